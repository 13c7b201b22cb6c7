// SPDX-License-Identifier: MIT
// properties/concurrency.cpp - property 9: concurrent threads on one
// allocator.
//
// Two to four threads, each bound (cpu_binding) to its own possible CPU, or
// all to one shared CPU, or each to a drawn one, run drawn op lists (map,
// unmap, vread, vm_unmap_aliases, purge, purge_all) at once, released
// together by one latch. Each keeps its mappings in its own harness::model,
// the reference model the runner uses, and checks on the way what only it
// can see (its maps succeed or fail with no_space, land in the range, page
// aligned, not over its own mappings; its unmaps succeed; its vreads of its
// own mappings read the model's bytes). Everything is drawn on the main
// thread before the threads start; the workers only record what went wrong,
// and the main thread asserts after join (RapidCheck is not thread-safe).
// After join, at quiescence:
//   - the TLB log of all threads, replayed in stamp order: nothing was
//     handed out while a page of it was stale;
//   - no WARN; allocator::check() finds nothing;
//   - the models agree with the allocator and with each other: mappings of
//     different threads never overlap; every page of every live mapping
//     reads back (vread) as its model says; every page of a small mapping
//     resolves to the block that served it, which is a block of the queue
//     of the CPU the thread ran on (vb->cpu); each block's used pages are
//     exactly the pages of the live mappings of all threads in it;
//   - unmapping everything and purging leaves no block and the whole range
//     free.
// Under the tsan preset ThreadSanitizer watches every run as well.
#include "common.hpp"
#include "harness/tlb.hpp"

#include <latch>
#include <map>
#include <thread>

namespace {

enum class placement { own, shared, drawn };

void showValue(placement p, std::ostream& os) {
    os << (p == placement::own      ? "own CPU each"
           : p == placement::shared ? "one shared CPU"
                                    : "drawn CPUs");
}

struct worker {
    unsigned cpu = 0;
    std::vector<harness::op> ops;
    harness::model model;
    std::vector<std::string> errors; // written by the worker, read after join
    explicit worker(const vmap::allocator& a) : model(a.page_size(), a.max_alloc()) {}
};

void error(worker& w, std::size_t i, const harness::op& o, const std::string& what) {
    if (w.errors.size() < 8)
        w.errors.push_back("CPU " + std::to_string(w.cpu) + " op #" + std::to_string(i) + " (" +
                           harness::to_string(o) + "): " + what);
}

void run_worker(vmap::allocator& a, worker& w, unsigned id, std::latch& go) {
    a.tlb().attach_this_thread(id);
    vmap::cpu_binding bind(w.cpu);
    harness::model& m = w.model;
    const auto& cpus = a.cpus().possible_cpus();
    go.arrive_and_wait();
    for (std::size_t i = 0; i < w.ops.size(); ++i) {
        const harness::op& o = w.ops[i];
        switch (o.kind) {
        case harness::op_kind::map: {
            std::unique_ptr<harness::mapping> mp = m.prepare(o.count, o.fill);
            harness::planned_fault plan(o.fault);
            vmap::map_result r = a.vm_map_ram(mp->pages);
            if (plan.fired() != (r.err == vmap::errc::no_memory)) {
                error(w, i, o,
                      std::string("planned fault ") + (plan.fired() ? "fired" : "did not fire") +
                          ", vm_map_ram returned " + vmap::to_string(r.err));
                break;
            }
            if (!r) {
                if (r.err != vmap::errc::no_space && r.err != vmap::errc::no_memory)
                    error(w, i, o, std::string("vm_map_ram failed with ") + vmap::to_string(r.err));
                break;
            }
            unsigned long bytes = o.count * a.page_size();
            if (r.addr % a.page_size() || r.addr < a.vmalloc_start() ||
                r.addr + bytes > a.vmalloc_end())
                error(w, i, o, "address " + props::hex(r.addr) + " is not a range inside");
            else if (m.overlaps(r.addr, bytes))
                error(w, i, o, "address " + props::hex(r.addr) + " overlaps a live mapping");
            mp->addr = r.addr;
            mp->cpu = w.cpu;
            // Safe: the block cannot be freed while this mapping lives in it.
            mp->block = m.is_small(o.count) ? a.find_block(r.addr) : nullptr;
            m.commit(std::move(mp));
            break;
        }
        case harness::op_kind::unmap:
            if (m.live_count()) {
                const harness::mapping& mp = m.at(o.handle);
                vmap::errc e = a.vm_unmap_ram(mp.addr, mp.count);
                if (e != vmap::errc::ok)
                    error(w, i, o, std::string("vm_unmap_ram failed with ") + vmap::to_string(e));
                m.remove(o.handle);
            }
            break;
        case harness::op_kind::vread:
            // Inside its own mapping only: the neighbours belong to others.
            if (m.live_count()) {
                const harness::mapping& mp = m.at(o.handle);
                unsigned long size = mp.count * a.page_size();
                unsigned long start =
                    (static_cast<unsigned>(o.delta + 128) % mp.count) * a.page_size() +
                    o.off % a.page_size();
                if (std::string e = harness::check_vread(
                        a, m, mp.addr + start, std::min<unsigned long>(o.len, size - start));
                    !e.empty())
                    error(w, i, o, e);
            }
            break;
        case harness::op_kind::unmap_aliases:
            a.vm_unmap_aliases();
            break;
        case harness::op_kind::purge:
            a.purge_fragmented_blocks(cpus[o.cpu % cpus.size()]);
            break;
        case harness::op_kind::purge_all:
            a.purge_fragmented_blocks_allcpus();
            break;
        case harness::op_kind::drain:
            a.run_drain_work();
            break;
        case harness::op_kind::shrink:
            a.vmap_node_shrink_scan();
            break;
        default:
            break; // not drawn for threads
        }
    }
}

std::string first_of(const std::vector<std::string>& v) {
    return v.empty() ? "" : v.front();
}

void check_after_join(vmap::allocator& a, std::vector<std::unique_ptr<worker>>& ws) {
    for (auto& w : ws)
        if (!w->errors.empty())
            RC_FAIL(w->errors.front());
    RC_ASSERT(a.diag().warn_hits() == 0u);
    // Every hand-out of every thread, at its own stamp (harness/tlb.hpp).
    harness::tlb_model tlb(a.page_size());
    if (std::string e = tlb.apply(a.tlb().take()); !e.empty())
        RC_FAIL(e);
    std::vector<std::string> v = a.check();
    if (!v.empty())
        RC_FAIL("allocator::check() after join: " + first_of(v));

    std::map<unsigned long, const harness::mapping*> all; // every thread's mappings
    std::map<const void*, unsigned> held;                 // pages per block, all threads
    for (auto& w : ws)
        for (const auto& m : w->model.live()) {
            all[m->addr] = m.get();
            if (std::string e =
                    harness::check_vread(a, w->model, m->addr, m->count * a.page_size());
                !e.empty())
                RC_FAIL("the mapping at " + props::hex(m->addr) + " of the thread on CPU " +
                        std::to_string(w->cpu) + ": " + e);
            if (!w->model.is_small(m->count))
                continue;
            const auto* vb = static_cast<const vmap::vmap_block*>(m->block);
            for (unsigned p = 0; p < m->count; ++p)
                if (a.find_block(m->addr + p * a.page_size()) != vb)
                    RC_FAIL("page " + std::to_string(p) + " of the mapping at " +
                            props::hex(m->addr) + " resolves to another block");
            if (vb->cpu != m->cpu)
                RC_FAIL("the mapping at " + props::hex(m->addr) + " made on CPU " +
                        std::to_string(m->cpu) + " came from a block of queue " +
                        std::to_string(vb->cpu));
            held[vb] += props::small_pages(a, m->count);
        }
    unsigned long end = 0;
    for (auto& [addr, m] : all) {
        if (addr < end)
            RC_FAIL("mappings of two threads overlap at " + props::hex(addr));
        end = addr + m->count * a.page_size();
    }
    for (vmap::vmap_block* vb : props::live_blocks(a))
        if (vb->used_map.count() != held[vb])
            RC_FAIL("block " + props::hex(vb->va->va_start) + " has " +
                    std::to_string(vb->used_map.count()) +
                    " used pages; the threads' live "
                    "mappings in it hold " +
                    std::to_string(held[vb]));

    // Unmap everything (on each mapping's CPU), flush, purge: nothing left.
    for (auto& w : ws) {
        vmap::cpu_binding bind(w->cpu);
        while (w->model.live_count()) {
            const harness::mapping& m = w->model.at(0);
            RC_ASSERT(a.vm_unmap_ram(m.addr, m.count) == vmap::errc::ok);
            w->model.remove(0);
        }
    }
    if (std::string e = harness::check_drained(a); !e.empty())
        RC_FAIL("after unmapping everything: " + e);
    if (std::string e = tlb.apply(a.tlb().take()); !e.empty())
        RC_FAIL(e);
}

} // namespace

RC_GTEST_PROP(concurrency, threads_agree_with_their_models_and_check_passes, ()) {
    props::config_options copt;
    copt.errors = props::error_paths::never; // misuse is single-threaded (bad_input)
    props::config_draw c = *props::gen_config(copt);
    c.cfg.on_warn = vmap::warn_policy::count;
    const unsigned threads = *rc::gen::inRange(2u, 5u);
    const placement where = *rc::gen::element(placement::own, placement::shared, placement::drawn);
    props::op_options opt;
    opt.threaded = true;
    vmap::allocator a(c.cfg);
    const auto& cpus = a.cpus().possible_cpus();
    const unsigned shared = *rc::gen::inRange<unsigned>(0, static_cast<unsigned>(cpus.size()));
    std::vector<std::unique_ptr<worker>> ws;
    for (unsigned t = 0; t < threads; ++t) {
        auto w = std::make_unique<worker>(a);
        unsigned pick = where == placement::own      ? t
                        : where == placement::shared ? shared
                                                     : *rc::gen::arbitrary<unsigned>();
        w->cpu = cpus[pick % cpus.size()];
        w->ops = *rc::gen::scale(0.5, props::gen_ops(opt)); // up to 50 ops each
        ws.push_back(std::move(w));
    }

    std::latch go(threads);
    {
        std::vector<std::thread> ts;
        for (unsigned i = 0; i < threads; ++i)
            ts.emplace_back(run_worker, std::ref(a), std::ref(*ws[i]), i, std::ref(go));
        for (std::thread& t : ts)
            t.join();
    }
    check_after_join(a, ws);
}
