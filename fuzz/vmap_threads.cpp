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
//                              round-robin to the threads (check becomes a
//                              no-op: the audit needs quiescence)
//   choices...                 the rest: one byte per scheduling decision,
//                              then a generator seeded from the input
// Each thread checks its own mappings as it goes (address, block, bytes);
// after all threads finish, the TLB promise over every hand-out of every
// thread (the stamped TLB log replayed in order by harness/tlb.hpp: exact at
// each event's own moment, so one pass after the join judges every map),
// the allocator's check(), every thread's mappings against its model and
// against the others', a full drain, and the TLB promise over the drain.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/checks.hpp"
#include "harness/ops.hpp"
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
    std::span<const std::uint8_t> choices;
    std::uint64_t seed = 0;
};

threaded_input decode(std::span<const std::uint8_t> in) {
    threaded_input t;
    harness::byte_reader r(in);
    std::uint8_t mask = 0x03, flags = 0, range = 255, nthreads = 0, len = 0;
    r.take(mask) && r.take(flags) && r.take(range) && r.take(nthreads);
    bool error_paths;
    t.cfg = harness::decode_config(mask, flags & 0x7f, range, error_paths);
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
    for (std::size_t i = 0; i < all.size(); ++i)
        t.ops[i % n].push_back(all[i]);
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

// One thread's operations, checked against its own model. op_stamps[i] is
// the TLB log's clock when op i began: every event of op i has a stamp at or
// after it, so a finding's stamp names its op.
void run_thread(vmap::allocator& a, harness::model& m, unsigned id, unsigned cpu,
                const std::vector<harness::op>& ops, std::uint64_t& digest,
                std::vector<std::uint64_t>& op_stamps) {
    a.tlb().attach_this_thread(id);
    auto binding = std::make_unique<vmap::cpu_binding>(cpu);
    const auto& possible = a.cpus().possible_cpus();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        const harness::op& o = ops[i];
        harness::det_scheduler::at_op(static_cast<unsigned>(i));
        op_stamps.push_back(a.tlb().now());
        auto check = [&](const std::string& e) {
            if (!e.empty())
                fail(id, i, &o, e);
        };
        switch (o.kind) {
        case harness::op_kind::map: {
            if (o.count == 0)
                break;
            std::unique_ptr<harness::mapping> mp = m.prepare(o.count, o.fill);
            vmap::map_result r = a.vm_map_ram(mp->pages);
            digest = digest * 31 + r.addr + static_cast<unsigned>(r.err);
            if (!r) {
                if (r.err != vmap::errc::no_space)
                    check(std::string("vm_map_ram failed with ") + vmap::to_string(r.err));
                break;
            }
            vmap::vmap_block* vb = nullptr;
            check(harness::check_new_mapping(a, m, r.addr, o.count, vb));
            mp->addr = r.addr;
            mp->cpu = cpu;
            mp->block = vb;
            m.commit(std::move(mp));
            break;
        }
        case harness::op_kind::unmap:
        case harness::op_kind::bad_unmap: {
            if (!m.live_count())
                break;
            harness::mapping& mp = m.at(o.handle);
            check(harness::check_resolves(a, m, mp));
            vmap::errc e = a.vm_unmap_ram(mp.addr, mp.count);
            if (e != vmap::errc::ok)
                check("vm_unmap_ram of a live mapping failed with " +
                      std::string(vmap::to_string(e)));
            m.remove(o.handle);
            break;
        }
        case harness::op_kind::vread: {
            if (!m.live_count())
                break;
            const harness::mapping& mp = m.at(o.handle);
            unsigned long bytes = mp.count * a.page_size();
            unsigned long off = (o.off * 16ul + o.len) % bytes; // own pages only
            check(harness::check_vread(a, m, mp.addr + off,
                                       std::min<unsigned long>(o.len, bytes - off)));
            break;
        }
        case harness::op_kind::unmap_aliases:
            a.vm_unmap_aliases();
            break;
        case harness::op_kind::purge:
            a.purge_fragmented_blocks(possible[o.cpu % possible.size()]);
            break;
        case harness::op_kind::purge_all:
            a.purge_fragmented_blocks_allcpus();
            break;
        case harness::op_kind::drain:
            a.run_drain_work(); // this thread is the worker, at this step
            break;
        case harness::op_kind::shrink:
            a.vmap_node_shrink_scan(); // memory pressure, at this step
            break;
        case harness::op_kind::switch_cpu:
            binding.reset();
            binding = std::make_unique<vmap::cpu_binding>(possible[o.cpu % possible.size()]);
            break;
        case harness::op_kind::check:
            break;
        }
    }
}

} // namespace

// Runs one input; returns the scheduler's decisions and a digest of every
// result, so a test can check that a replay is identical.
std::pair<std::vector<std::uint8_t>, std::uint64_t>
run_vmap_threads(std::span<const std::uint8_t> in) {
    threaded_input t = decode(in);
    vmap::allocator a(t.cfg);
    unsigned n = static_cast<unsigned>(t.cpus.size());
    std::vector<std::unique_ptr<harness::model>> models;
    std::vector<std::uint64_t> digests(n, 0);
    std::vector<std::vector<std::uint64_t>> op_stamps(n);
    for (unsigned i = 0; i < n; ++i)
        models.push_back(std::make_unique<harness::model>(a.page_size(), a.max_alloc()));
    auto sched = std::make_unique<harness::det_scheduler>(t.choices, t.seed);
    std::vector<std::function<void()>> bodies;
    for (unsigned i = 0; i < n; ++i)
        bodies.push_back([&, i] {
            run_thread(a, *models[i], i, t.cpus[i], t.ops[i], digests[i], op_stamps[i]);
        });
    sched->run(std::move(bodies));

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

    // Quiescent again: the whole picture.
    if (std::string e = harness::check_audit(a); !e.empty())
        fail(0, 0, nullptr, e);
    harness::model all(a.page_size(), a.max_alloc());
    for (unsigned i = 0; i < n; ++i)
        for (const auto& mp : models[i]->live()) {
            if (all.overlaps(mp->addr, mp->count * a.page_size()))
                fail(i, 0, nullptr,
                     "mapping at " + harness::hex(mp->addr) + " overlaps another thread's");
            auto copy = all.prepare(mp->count, mp->fill);
            copy->addr = mp->addr;
            all.commit(std::move(copy));
            if (std::string e = harness::check_resolves(a, *models[i], *mp); !e.empty())
                fail(i, 0, nullptr, e);
        }
    for (const auto& mp : all.live())
        if (std::string e = harness::check_vread(a, all, mp->addr, mp->count * a.page_size());
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

#ifndef VMAP_THREADS_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    run_vmap_threads({data, size});
    return 0;
}
#endif
