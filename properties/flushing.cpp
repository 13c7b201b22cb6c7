// SPDX-License-Identifier: MIT
// properties/flushing.cpp - property 7: TLB flushing of lazily unmapped
// block pages.
//
// The model (harness::model::unflushed) knows which pages were unmapped
// from blocks and are not yet covered by a flush; the runner applies every
// recorded flush to it. Asserted directly, in every reachable state:
//   - tracking: every unflushed page lies inside the dirty range
//     [dirty_min, dirty_max) of a live block or in an area on a lazy list
//     (else no later flush could know about it);
// and around every vm_unmap_aliases():
//   - afterwards no page unmapped before it is unflushed, and no block has
//     a dirty range left (every range was flushed and reset: fc1e0d980037
//     walked only the free lists and missed the full blocks);
//   - a second call with no unmap in between flushes nothing new: the
//     flush counter does not move (a09fad96ffb1 flushed the same ranges
//     on every call);
//   - the non-forced purge inside it never takes a block that had
//     free >= VMAP_PURGE_THRESHOLD (77e50af07f14).
// After the drawn ops: vm_unmap_aliases, then every mapping unmapped op by
// op under the same checks, then vm_unmap_aliases once more.
// And vmalloc's promise, property 7b: no fresh mapping contains a stale
// page. Exhausting configurations with many maps and unmaps and few
// vm_unmap_aliases calls, so ranges come back through block frees, purges
// (on exhaustion too) and large unmaps. After every successful map, asserted
// directly: no page of it is stale in the TLB model (the allocator's stamped
// log replayed: harness/tlb.hpp) nor unmapped-and-unflushed in the model
// (which trusts nothing the allocator reports).
#include "common.hpp"

#include <set>
#include <string>

namespace {

void check_tracking(harness::runner& r) {
    vmap::allocator& a = r.allocator();
    const std::set<unsigned long>& unflushed = r.model().unflushed();
    if (unflushed.empty())
        return;
    for (unsigned long page : unflushed) {
        vmap::vmap_block* vb = a.find_block(page);
        if (!vb) {
            // A freed block's or a large mapping's page: its area waits on
            // a lazy list, which the next lazy purge flushes.
            if (!a.lazy_area_covers(page))
                RC_FAIL("page " + props::hex(page) +
                        " was unmapped and never flushed, but neither a block nor a lazy area "
                        "holds it");
            continue;
        }
        std::lock_guard<vmap::spinlock> g(vb->lock);
        unsigned off = static_cast<unsigned>((page - vb->va->va_start) >> a.page_shift());
        if (off < vb->dirty_min || off >= vb->dirty_max)
            RC_FAIL("page " + props::hex(page) + " (page " + std::to_string(off) +
                    " of its block) is unflushed but outside the block's dirty range [" +
                    std::to_string(vb->dirty_min) + ", " + std::to_string(vb->dirty_max) + ")");
    }
}

void unmap_aliases(harness::runner& r) {
    vmap::allocator& a = r.allocator();
    // Before: what must be flushed, and the blocks a non-forced purge must keep.
    std::set<unsigned long> due = r.model().unflushed();
    struct usable {
        const vmap::vmap_block* vb;
        unsigned long start;
        unsigned free;
    };
    std::vector<usable> keep;
    for (vmap::vmap_block* vb : props::live_blocks(a)) {
        unsigned free = vb->free.load(std::memory_order_relaxed);
        if (free >= a.purge_threshold())
            keep.push_back({vb, vb->va->va_start, free});
    }

    r.step(harness::op{.kind = harness::op_kind::unmap_aliases});

    for (unsigned long page : due)
        if (r.model().unflushed().count(page))
            RC_FAIL("page " + props::hex(page) +
                    " was unmapped before vm_unmap_aliases and is still unflushed after it");
    for (vmap::vmap_block* vb : props::live_blocks(a)) {
        std::lock_guard<vmap::spinlock> g(vb->lock);
        if (vb->dirty_max != 0)
            RC_FAIL("block " + props::hex(vb->va->va_start) + " keeps the dirty range [" +
                    std::to_string(vb->dirty_min) + ", " + std::to_string(vb->dirty_max) +
                    ") after vm_unmap_aliases (free " + std::to_string(vb->free.load()) + ")");
    }
    for (const usable& u : keep)
        if (a.find_block(u.start) != u.vb)
            RC_FAIL("vm_unmap_aliases purged block " + props::hex(u.start) + " with " +
                    std::to_string(u.free) + " free pages >= VMAP_PURGE_THRESHOLD " +
                    std::to_string(a.purge_threshold()));

    // Again, with no unmap in between: nothing new to flush.
    std::uint64_t flushes = a.tlb().flushes();
    std::uint64_t purged = a.stats().blocks_purged;
    r.step(harness::op{.kind = harness::op_kind::unmap_aliases});
    if (a.tlb().flushes() != flushes)
        RC_FAIL("a second vm_unmap_aliases with no unmap in between flushed " +
                std::to_string(a.tlb().flushes() - flushes) + " range(s)");
    RC_ASSERT(a.stats().blocks_purged == purged);
}

void run(const props::config_draw& c, const std::vector<harness::op>& ops) {
    harness::runner r(c.cfg, c.error_paths, props::throwing_options(0));
    auto step = [&r](const harness::op& o) {
        if (o.kind == harness::op_kind::unmap_aliases)
            unmap_aliases(r);
        else
            r.step(o);
        check_tracking(r);
    };
    for (const harness::op& o : ops)
        step(o);
    unmap_aliases(r);
    props::drain(r, step); // full blocks empty out: freed, flushed
    unmap_aliases(r);
    r.finish();
}

} // namespace

RC_GTEST_PROP(flushing, vm_unmap_aliases_flushes_every_freed_page_once, ()) {
    props::config_draw c = *props::gen_config({});
    props::op_options opt;
    opt.error_paths = c.error_paths;
    opt.aliases_weight = 10;
    run(c, *props::gen_ops(opt));
}

// Small blocks fill up (free == 0: on no free list) and fragment (purge
// candidates on both sides of the threshold).
RC_GTEST_PROP(flushing, full_and_fragmented_blocks_are_flushed_and_purged_right, ()) {
    props::config_draw c = *props::gen_exhausting_config();
    props::op_options opt;
    opt.map_weight = 48;
    opt.aliases_weight = 10;
    run(c, *props::gen_ops(opt));
}

RC_GTEST_PROP(flushing, no_fresh_mapping_contains_a_stale_page, ()) {
    props::config_draw c = *props::gen_exhausting_config();
    props::op_options opt;
    opt.map_weight = 40;
    opt.aliases_weight = 2;
    const std::vector<harness::op> ops = *props::gen_ops(opt);
    harness::runner r(c.cfg, c.error_paths, props::throwing_options(0));
    const unsigned long page = r.allocator().page_size();
    std::set<unsigned long> ever_mapped;
    bool reused = false;
    for (const harness::op& o : ops) {
        std::size_t before = r.model().live_count();
        r.step(o);
        if (o.kind != harness::op_kind::map || r.model().live_count() == before)
            continue;
        const harness::mapping& m = *r.model().live().back(); // commit() appends
        for (unsigned p = 0; p < m.count; ++p) {
            unsigned long addr = m.addr + p * page;
            if (r.tlb().stale(addr))
                RC_FAIL("fresh mapping at " + props::hex(m.addr) + " contains page " +
                        props::hex(addr) + ", stale in the TLB model:\n" + r.tlb().describe());
            if (r.model().unflushed().count(addr))
                RC_FAIL("fresh mapping at " + props::hex(m.addr) + " contains page " +
                        props::hex(addr) + ", unmapped earlier and not flushed since");
            reused |= !ever_mapped.insert(addr).second;
        }
    }
    RC_CLASSIFY(reused, "a range came back");
    r.finish();
}
