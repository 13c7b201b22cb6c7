// SPDX-License-Identifier: MIT
// properties/block_lookup.cpp - property 2: every freed address resolves to
// its owning block.
//
// In every reachable state (after each op of a random sequence run by
// harness::runner), for every live small mapping and every page address in
// it, addr_to_vb_xa(addr) + xarray load at addr_to_vb_idx(addr) returns the
// block that served the allocation (the model records it in
// mapping::block). And around each unmap of a small mapping: afterwards its
// block is still found (at every page address of the block) exactly when
// not all of its pages are dirty, and is gone (freed) exactly when they are.
// After the drawn ops every mapping is unmapped the same way, so every
// block the run made is watched on its way to being fully dirty.
#include "common.hpp"

namespace {

// The block that addr_to_vb_xa() + xa_load() names for `addr`.
const vmap::vmap_block* lookup(vmap::allocator& a, unsigned long addr) {
    return a.addr_to_vb_xa(addr).load(a.addr_to_vb_idx(addr));
}

void check_live_mappings(harness::runner& r) {
    vmap::allocator& a = r.allocator();
    for (const auto& m : r.model().live()) {
        if (!r.model().is_small(m->count))
            continue;
        if (!m->block)
            RC_FAIL("the small mapping at " + props::hex(m->addr) + " has no block recorded");
        for (unsigned p = 0; p < m->count; ++p) {
            unsigned long addr = m->addr + p * a.page_size();
            const vmap::vmap_block* got = lookup(a, addr);
            if (got != m->block)
                RC_FAIL("page " + std::to_string(p) + " of the " + std::to_string(m->count) +
                        "-page mapping at " + props::hex(m->addr) + " resolves to " +
                        (got ? "another block" : "no block") + ", not to the block that served it");
        }
    }
}

// An unmap about to happen: its block and how dirty the block was before.
struct watched_unmap {
    const vmap::vmap_block* vb = nullptr;
    unsigned long va_start = 0;
    unsigned dirty_before = 0;
    unsigned pages = 0; // pages the unmap makes dirty (2^order)
};

bool watch(harness::runner& r, const harness::op& o, watched_unmap& w) {
    if (o.kind != harness::op_kind::unmap || r.model().live_count() == 0)
        return false;
    const harness::mapping& m = r.model().at(o.handle); // the one unmap will remove
    if (!r.model().is_small(m.count))
        return false;
    w.vb = static_cast<const vmap::vmap_block*>(m.block);
    w.va_start = w.vb->va->va_start;
    w.dirty_before = w.vb->dirty.load(std::memory_order_relaxed);
    w.pages = props::small_pages(r.allocator(), m.count);
    return true;
}

void check_after_unmap(harness::runner& r, const watched_unmap& w) {
    vmap::allocator& a = r.allocator();
    bool all_dirty = w.dirty_before + w.pages == a.bbmap_bits();
    const vmap::vmap_block* now = lookup(a, w.va_start);
    if (all_dirty) {
        // An unmap allocates nothing, so the slot must simply be empty.
        if (now != nullptr)
            RC_FAIL("block " + props::hex(w.va_start) +
                    " is still in its xarray although all its pages are dirty");
        return;
    }
    if (now != w.vb)
        RC_FAIL("block " + props::hex(w.va_start) + " is gone (or replaced) with " +
                std::to_string(w.dirty_before + w.pages) + " of " + std::to_string(a.bbmap_bits()) +
                " pages dirty");
    RC_ASSERT(w.vb->dirty.load(std::memory_order_relaxed) == w.dirty_before + w.pages);
    for (unsigned long p = 0; p < a.bbmap_bits(); ++p)
        RC_ASSERT(lookup(a, w.va_start + p * a.page_size()) == w.vb);
}

void run(const props::config_draw& c, const std::vector<harness::op>& ops) {
    // check_every 0: the runner's periodic audit stays out of the way, so
    // the assertions here are the ones that see a broken lookup first
    // (the runner still audits at the end).
    harness::runner r(c.cfg, c.error_paths, props::throwing_options(0));
    auto step = [&r](const harness::op& o) {
        watched_unmap w;
        bool watching = watch(r, o, w);
        r.step(o);
        if (watching)
            check_after_unmap(r, w);
        check_live_mappings(r);
    };
    for (const harness::op& o : ops)
        step(o);
    props::drain(r, step);
    r.finish();
}

} // namespace

RC_GTEST_PROP(block_lookup, every_page_of_a_live_mapping_resolves_to_its_block, ()) {
    props::config_draw c = *props::gen_config({});
    props::op_options opt;
    opt.error_paths = c.error_paths;
    run(c, *props::gen_ops(opt));
}

// Small blocks, many unmaps: blocks fill, become fully dirty and are freed.
RC_GTEST_PROP(block_lookup, a_block_is_freed_exactly_when_all_its_pages_are_dirty, ()) {
    props::config_draw c = *props::gen_exhausting_config();
    props::op_options opt;
    opt.map_weight = 48;
    opt.aliases_weight = 2;
    run(c, *props::gen_ops(opt));
}
