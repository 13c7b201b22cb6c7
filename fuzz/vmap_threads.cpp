// SPDX-License-Identifier: MIT
// fuzz/vmap_threads.cpp: concurrent operation lists whose interleaving the
// input chooses (harness/scheduler.hpp). Built with scheduling points on.
//
// Encoding:
//   mask flags range           as vmap_ops (harness/ops.hpp); the error-path
//                              bit is ignored: every WARN and BUG is fatal
//   threads                    2 + threads % 3 (2..4)
//   cpu x threads              thread i runs on possible[cpu % n]; threads
//                              may share a CPU
//   len                        (len + 1) * 4 bytes of operations follow,
//                              decoded as vmap_ops operations and dealt
//                              round-robin to the threads, with two read
//                              by the opcode's `sub` bits (5-7) here:
//                                vread, sub bit 0 clear: the thread reads
//                                  one of its own mappings, as before;
//                                vread, sub bit 0 set: it reads any live
//                                  mapping of any thread (handle % all
//                                  live), from page (delta % (count + 2)),
//                                  so also the neighbours and holes: the
//                                  /proc/kcore reader;
//                                check (the audit needs quiescence, so
//                                  never that): rcutorture, sub bit 0 set:
//                                  replace the RCU-protected object; clear:
//                                  hold it across 1 scheduling point, or 4
//                                  with sub bit 1 (harness/rcu_torture.hpp);
//                                  sub bit 2 (opcode bit 7) is left to
//                                  ops.hpp (main: drain, not check);
//                              opcode bit 4 runs the ready RCU callbacks
//                              after the op
//   choices...                 the rest: one byte per scheduling decision,
//                              then a generator seeded from the input (bit
//                              7 of a choice also ends grace periods; at a
//                              may_sleep point, bit 6 migrates the thread
//                              to possible[(choice >> 2) % n], as a task
//                              that slept in alloc_vmap_area() may wake on
//                              another CPU)
// The RCU poll batch is 1: a callback runs as soon as nothing holds it up.
// Each thread checks its own mappings as it goes (address, block, bytes) and
// every no_space it gets when no other thread unmapped meanwhile
// (check_exhausted(): the purge of every CPU left no block it would free).
// The cross-thread reader's rule: a page of a mapping that was published
// (vm_map_ram returned, the owner recorded it) before the read and not
// withdrawn (the owner records that before vm_unmap_ram) until after it
// reads as the mapping's bytes; when no thread was inside a map or unmap
// during the read, a page of no mapping reads as zeros; the rest is not
// judged. The record of live mappings is relaxed atomics that only one
// running thread touches at a time (the scheduler's hand-off is hidden from
// TSan), so TSan orders the reader's copy after the owner's writes of the
// page only through the allocator's own synchronisation.
// After all threads finish, the TLB promise over every hand-out of every
// thread (the stamped TLB log replayed in order by harness/tlb.hpp: exact at
// each event's own moment, so one pass after the join judges every map),
// the allocator's check(), every thread's mappings against its model and
// against the others', a full drain, and the TLB promise over the drain.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/checks.hpp"
#include "harness/ops.hpp"
#include "harness/rcu_torture.hpp"
#include "harness/scheduler.hpp"
#include "harness/tlb.hpp"

#if !defined(VMAP_SCHED_HOOKS) || !VMAP_SCHED_HOOKS
#error "vmap_threads needs the scheduling points: build it with VMAP_SCHED_HOOKS=1"
#endif

namespace {

struct threaded_input {
    vmap::config cfg;
    std::vector<unsigned> cpus;                // per thread
    std::vector<std::vector<harness::op>> ops; // per thread
    std::size_t op_count = 0;                  // ops of all threads
    std::size_t torture_writes = 0;
    std::span<const std::uint8_t> choices;
    std::uint64_t seed = 0;
};

// harness::default_header, but two CPUs: every thread on CPU 0 races nothing.
constexpr harness::header_bytes default_threads_header = {0x03, 0, 255};

threaded_input decode(std::span<const std::uint8_t> in) {
    threaded_input t;
    harness::byte_reader r(in);
    std::uint8_t mask = default_threads_header[0], flags = default_threads_header[1],
                 range = default_threads_header[2], nthreads = 0, len = 0;
    r.take(mask) && r.take(flags) && r.take(range) && r.take(nthreads);
    bool error_paths;
    // 64-byte pages (flags bits 2-3 cleared): no concurrency bug depends on
    // the page size, and the model's fills and the final reads are most of an
    // execution's byte work; vmap_ops keeps all four sizes. Bit 7 (error
    // paths) stays off: threads make valid calls only.
    t.cfg = harness::decode_config(mask, flags & 0x73, range, error_paths);
    t.cfg.on_warn = vmap::warn_policy::abort;
    t.cfg.on_bug = vmap::bug_policy::abort;
    unsigned n = 2 + nthreads % 3;
    const auto& possible = t.cfg.possible.cpus();
    for (unsigned i = 0; i < n; ++i) {
        std::uint8_t c = static_cast<std::uint8_t>(i);
        r.take(c);
        t.cpus.push_back(possible[c % possible.size()]);
    }
    r.take(len);
    std::size_t op_bytes = std::min<std::size_t>((len + 1u) * 4u, r.left());
    std::size_t consumed = in.size() - r.left();
    harness::byte_reader opr(in.subspan(consumed, op_bytes));
    std::vector<harness::op> all = harness::decode_ops(opr, false);
    t.ops.resize(n);
    for (std::size_t i = 0; i < all.size(); ++i) {
        t.ops[i % n].push_back(all[i]);
        if (all[i].kind == harness::op_kind::check && (all[i].sub & 1))
            ++t.torture_writes;
    }
    t.op_count = all.size();
    t.choices = in.subspan(consumed + op_bytes);
    std::uint64_t h = 1469598103934665603ULL; // FNV-1a of the whole input
    for (std::uint8_t b : in)
        h = (h ^ b) * 1099511628211ULL;
    t.seed = h;
    return t;
}

[[noreturn]] void fail(unsigned thread, std::size_t index, const harness::op* o,
                       const std::string& what) {
    std::fprintf(stderr, "vmap_threads: thread %u, op #%zu (%s): %s\n", thread, index,
                 o ? harness::to_string(*o).c_str() : "final checks", what.c_str());
    std::fflush(stderr);
    std::abort();
}

// What every thread may know of every other's mappings: one slot per op of
// the input (op k of thread i is op k * n + i; a map op's slot is its
// mapping's, never reused), and counters of the map and unmap calls under
// way. Relaxed atomics only: no happens-before edge between threads.
struct published {
    std::atomic<unsigned long> addr{0};
    std::atomic<unsigned> count{0};
    std::atomic<std::uint8_t> fill{0};
    std::atomic<bool> live{false};
};

struct registry {
    std::vector<published> slots;
    std::atomic<std::uint64_t> changes{0}; // bumped at each map/unmap start and end
    std::atomic<unsigned> in_flight{0};    // threads inside vm_map_ram/vm_unmap_ram
    std::atomic<std::uint64_t> unmaps{0};  // bumped at each unmap start and end
    std::atomic<unsigned> unmapping{0};    // threads inside vm_unmap_ram
    explicit registry(std::size_t n) : slots(n) {}
};

struct live_copy {
    std::size_t slot;
    unsigned long addr;
    unsigned count;
    std::uint8_t fill;
};

// The cross-thread reader (vread with sub bit 0): reads around a live
// mapping of any thread and judges each page by the rule at the top.
std::string cross_read(vmap::allocator& a, registry& reg, const harness::op& o) {
    const auto rx = std::memory_order_relaxed;
    std::uint64_t changes = reg.changes.load(rx);
    bool still = reg.in_flight.load(rx) == 0;
    std::vector<live_copy> live;
    for (std::size_t s = 0; s < reg.slots.size(); ++s)
        if (reg.slots[s].live.load(rx))
            live.push_back({s, reg.slots[s].addr.load(rx), reg.slots[s].count.load(rx),
                            reg.slots[s].fill.load(rx)});
    if (live.empty())
        return "";
    const live_copy& target = live[o.handle % live.size()];
    const unsigned long page = a.page_size();
    long page_delta = o.delta % (static_cast<long>(target.count) + 2);
    unsigned long addr = target.addr +
                         static_cast<unsigned long>(page_delta * static_cast<long>(page)) +
                         o.off % page;
    std::vector<std::byte> buf(o.len, std::byte{0x5a});
    a.vread(addr, buf);
    still = still && reg.changes.load(rx) == changes;
    std::vector<std::byte> want;
    for (std::size_t done = 0; done < buf.size();) {
        unsigned long at = addr + done;
        std::size_t n = std::min<std::size_t>(page - at % page, buf.size() - done);
        const live_copy* m = nullptr;
        for (const live_copy& l : live)
            if (at >= l.addr && at < l.addr + l.count * page)
                m = &l;
        want.assign(n, std::byte{0});
        bool judged = still && !m;
        if (m && reg.slots[m->slot].live.load(rx)) { // published throughout
            judged = true;
            unsigned long off = at - m->addr;
            for (std::size_t i = 0; i < n; ++i)
                want[i] =
                    harness::pattern(m->fill, static_cast<unsigned>(off / page), off % page + i);
        }
        if (judged && std::memcmp(buf.data() + done, want.data(), n) != 0) {
            std::size_t i = 0;
            while (buf[done + i] == want[i])
                ++i;
            return "cross-thread vread at " + harness::hex(at + i) + " read " +
                   std::to_string(static_cast<unsigned>(buf[done + i])) + ", expected " +
                   std::to_string(static_cast<unsigned>(want[i])) +
                   (m ? " (a page of the mapping at " + harness::hex(m->addr) +
                            ", published before the read and live after it)"
                      : " (no mapping, and no map or unmap under way)");
        }
        done += n;
    }
    return "";
}

// One thread's operations, checked against its own model. op_stamps[i] is
// the TLB log's clock when op i began: every event of op i has a stamp at or
// after it, so a finding's stamp names its op.
void run_thread(vmap::allocator& a, harness::model& m, registry& reg, harness::rcu_torture& torture,
                unsigned id, unsigned n_threads, unsigned cpu, const std::vector<harness::op>& ops,
                std::uint64_t& digest, std::vector<std::uint64_t>& op_stamps) {
    const auto rx = std::memory_order_relaxed;
    a.tlb().attach_this_thread(id);
    auto binding = std::make_unique<vmap::cpu_binding>(cpu);
    const auto& possible = a.cpus().possible_cpus();
    std::map<unsigned long, std::size_t> slot_of; // own live mapping -> its slot
    for (std::size_t i = 0; i < ops.size(); ++i) {
        const harness::op& o = ops[i];
        harness::det_scheduler::at_op(static_cast<unsigned>(i));
        op_stamps.push_back(a.tlb().now());
        auto check = [&](const std::string& e) {
            if (!e.empty())
                fail(id, i, &o, e);
        };
        auto frees_lazily = [&](auto&& call) {
            reg.unmapping.fetch_add(1, rx);
            reg.unmaps.fetch_add(1, rx);
            call();
            reg.unmaps.fetch_add(1, rx);
            reg.unmapping.fetch_sub(1, rx);
        };
        switch (o.kind) {
        case harness::op_kind::map: {
            if (o.count == 0)
                break;
            std::unique_ptr<harness::mapping> mp = m.prepare(o.count, o.fill);
            std::uint64_t unmaps = reg.unmaps.load(rx);
            bool unmapping = reg.unmapping.load(rx) != 0;
            reg.in_flight.fetch_add(1, rx);
            reg.changes.fetch_add(1, rx);
            // A planned fault may roll back through vm_unmap_ram(), which
            // frees lazily: for the other threads' no_space rule, an unmap.
            if (o.fault) {
                reg.unmapping.fetch_add(1, rx);
                reg.unmaps.fetch_add(1, rx); // at start and end, as an unmap's
            }
            vmap::map_result r;
            bool fired = false;
            {
                harness::planned_fault plan(o.fault);
                r = a.vm_map_ram(mp->pages);
                fired = plan.fired();
            }
            if (o.fault) {
                reg.unmaps.fetch_add(1, rx);
                reg.unmapping.fetch_sub(1, rx);
            }
            digest = digest * 31 + r.addr + static_cast<unsigned>(r.err);
            if (fired || r.err == vmap::errc::no_memory) {
                reg.changes.fetch_add(1, rx);
                reg.in_flight.fetch_sub(1, rx);
                if (!fired || r.err != vmap::errc::no_memory || r.addr != 0)
                    check(std::string("vm_map_ram with a planned fault (fired: ") +
                          (fired ? "yes" : "no") + ") returned " + vmap::to_string(r.err));
                break;
            }
            if (!r) {
                reg.changes.fetch_add(1, rx);
                reg.in_flight.fetch_sub(1, rx);
                if (r.err != vmap::errc::no_space)
                    check(std::string("vm_map_ram failed with ") + vmap::to_string(r.err));
                // Judged only if no other thread unmapped, purged or drained
                // meanwhile: a block it made fragmented or an area it freed
                // lazily after our purge is not our purge's miss.
                if (!unmapping && reg.unmaps.load(rx) == unmaps &&
                    o.count * a.page_size() <= a.cfg().vmalloc_size) {
                    harness::unobserved_look look;
                    check(harness::check_exhausted(a));
                }
                break;
            }
            vmap::vmap_block* vb = nullptr;
            check(harness::check_new_mapping(a, m, r.addr, o.count, vb));
            mp->addr = r.addr;
            mp->cpu = cpu;
            mp->block = vb;
            m.commit(std::move(mp));
            std::size_t s = i * n_threads + id;
            reg.slots[s].addr.store(r.addr, rx);
            reg.slots[s].count.store(o.count, rx);
            reg.slots[s].fill.store(o.fill, rx);
            reg.slots[s].live.store(true, rx);
            slot_of[r.addr] = s;
            reg.changes.fetch_add(1, rx);
            reg.in_flight.fetch_sub(1, rx);
            break;
        }
        case harness::op_kind::unmap:
        case harness::op_kind::bad_unmap: {
            if (!m.live_count())
                break;
            harness::mapping& mp = m.at(o.handle);
            check(harness::check_resolves(a, m, mp));
            auto slot = slot_of.find(mp.addr);
            reg.slots[slot->second].live.store(false, rx); // withdrawn first
            slot_of.erase(slot);
            reg.in_flight.fetch_add(1, rx);
            reg.unmapping.fetch_add(1, rx);
            reg.changes.fetch_add(1, rx);
            reg.unmaps.fetch_add(1, rx);
            vmap::errc e = a.vm_unmap_ram(mp.addr, mp.count);
            if (e != vmap::errc::ok)
                check("vm_unmap_ram of a live mapping failed with " +
                      std::string(vmap::to_string(e)));
            m.remove(o.handle); // the pages die here
            reg.unmaps.fetch_add(1, rx);
            reg.changes.fetch_add(1, rx);
            reg.unmapping.fetch_sub(1, rx);
            reg.in_flight.fetch_sub(1, rx);
            break;
        }
        case harness::op_kind::vread: {
            if (o.sub & 1) {
                check(cross_read(a, reg, o));
                break;
            }
            if (!m.live_count())
                break;
            const harness::mapping& mp = m.at(o.handle);
            unsigned long bytes = mp.count * a.page_size();
            unsigned long off = (o.off * 16ul + o.len) % bytes; // own pages only
            check(harness::check_vread(a, m, mp.addr + off,
                                       std::min<unsigned long>(o.len, bytes - off)));
            break;
        }
        // These free areas lazily or refill pools: a no_space judged on
        // another thread must not span one of them (reg.unmaps).
        case harness::op_kind::unmap_aliases:
            frees_lazily([&] { a.vm_unmap_aliases(); });
            break;
        case harness::op_kind::purge:
            frees_lazily([&] { a.purge_fragmented_blocks(possible[o.cpu % possible.size()]); });
            break;
        case harness::op_kind::purge_all:
            frees_lazily([&] { a.purge_fragmented_blocks_allcpus(); });
            break;
        case harness::op_kind::drain:
            frees_lazily([&] { a.run_drain_work(); }); // this thread is the worker
            break;
        case harness::op_kind::shrink:
            a.vmap_node_shrink_scan(); // memory pressure, at this step
            break;
        case harness::op_kind::switch_cpu:
            binding.reset();
            binding = std::make_unique<vmap::cpu_binding>(possible[o.cpu % possible.size()]);
            break;
        case harness::op_kind::check:
            if (o.sub & 1)
                torture.write();
            else
                check(torture.read((o.sub & 2) ? 4 : 1));
            break;
        }
        if (o.rcu_poll)
            vmap::rcu::poll();
    }
}

} // namespace

// Runs one input; returns the scheduler's decisions and a digest of every
// result, so a test can check that a replay is identical.
std::pair<std::vector<std::uint8_t>, std::uint64_t>
run_vmap_threads(std::span<const std::uint8_t> in) {
    threaded_input t = decode(in);
    vmap::rcu::set_poll_batch(1); // grace periods end as early as they may
    vmap::allocator a(t.cfg);
    registry reg(t.op_count);
    auto torture = std::make_unique<harness::rcu_torture>(t.torture_writes);
    unsigned n = static_cast<unsigned>(t.cpus.size());
    std::vector<std::unique_ptr<harness::model>> models;
    std::vector<std::uint64_t> digests(n, 0);
    std::vector<std::vector<std::uint64_t>> op_stamps(n);
    for (unsigned i = 0; i < n; ++i)
        models.push_back(std::make_unique<harness::model>(a.page_size(), a.max_alloc()));
    auto sched = std::make_unique<harness::det_scheduler>(t.choices, t.seed);
    sched->set_migration_cpus(a.cpus().possible_cpus());
    std::vector<std::function<void()>> bodies;
    for (unsigned i = 0; i < n; ++i)
        bodies.push_back([&, i] {
            run_thread(a, *models[i], reg, *torture, i, n, t.cpus[i], t.ops[i], digests[i],
                       op_stamps[i]);
        });
    sched->run(std::move(bodies));
    harness::quiescent_checks quiet;
    torture.reset(); // quiescent: its last objects go through RCU, then barrier()

    // The TLB promise, at every hand-out of every thread, in stamp order.
    harness::tlb_model tlb(a.page_size());
    auto replay_tlb = [&] {
        for (const vmap::tlb_event& e : a.tlb().take()) {
            std::string v = tlb.apply(e);
            if (v.empty())
                continue;
            v += "\n  stale pages:\n" + tlb.describe();
            if (e.thread >= n)
                fail(0, 0, nullptr, v);
            const std::vector<std::uint64_t>& s = op_stamps[e.thread];
            auto op = std::upper_bound(s.begin(), s.end(), e.stamp);
            std::size_t i = static_cast<std::size_t>(op - s.begin()) - 1;
            fail(e.thread, i, &t.ops[e.thread][i], v);
        }
    };
    replay_tlb();

    // vm_unmap_aliases()'s promise, quiescent: afterwards no page unmapped
    // before it may still have a translation (a dirty range an earlier call
    // reset before the pages were unmapped would stay stale).
    a.vm_unmap_aliases();
    replay_tlb();
    if (tlb.any_stale(a.vmalloc_start(), a.vmalloc_end()))
        fail(0, 0, nullptr,
             "pages unmapped before a quiescent vm_unmap_aliases are still stale after it:\n" +
                 tlb.describe());

    // Quiescent again: the whole picture.
    if (std::string e = harness::check_audit(a); !e.empty())
        fail(0, 0, nullptr, e);
    harness::model all(a.page_size(), a.max_alloc());
    for (unsigned i = 0; i < n; ++i)
        for (const auto& mp : models[i]->live()) {
            if (all.overlaps(mp->addr, mp->count * a.page_size()))
                fail(i, 0, nullptr,
                     "mapping at " + harness::hex(mp->addr) + " overlaps another thread's");
            all.record(mp->addr, mp->count, mp->fill);
            if (std::string e = harness::check_resolves(a, *models[i], *mp); !e.empty())
                fail(i, 0, nullptr, e);
        }
    // Whole mappings, up to 146 pages: a buffer kept from run to run spares
    // an mmap and its page faults per run (issue 18's profile).
    static harness::read_buffer whole;
    for (const auto& mp : all.live())
        if (std::string e =
                harness::check_vread(a, all, mp->addr, mp->count * a.page_size(), whole);
            !e.empty())
            fail(0, 0, nullptr, e);
    for (unsigned i = 0; i < n; ++i)
        for (const auto& mp : models[i]->live())
            if (a.vm_unmap_ram(mp->addr, mp->count) != vmap::errc::ok)
                fail(i, 0, nullptr, "final vm_unmap_ram of " + harness::hex(mp->addr) + " failed");
    if (std::string e = harness::check_drained(a); !e.empty())
        fail(0, 0, nullptr, e);
    replay_tlb();
    std::uint64_t digest = 0;
    for (std::uint64_t d : digests)
        digest = digest * 1000003 + d;
    return {sched->trace(), digest};
}

// The pinned fuzzer's padding of short inputs (fuzz/pin_mutator.cpp).
const harness::header_bytes& pin_header_defaults() {
    return default_threads_header;
}

#ifndef VMAP_THREADS_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    run_vmap_threads({data, size});
    return 0;
}
#endif
