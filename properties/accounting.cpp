// SPDX-License-Identifier: MIT
// properties/accounting.cpp - property 6: page accounting at quiescence.
//
// After every op of a random sequence (the allocator is quiescent between
// ops), for every block in the xarrays, each fact asserted directly:
//   - free + dirty + used == BITS, used = popcount(used_map);
//   - used bits only below BITS - free (bump allocation from the front);
//   - used == the pages of the live mappings the model says it served
//     (each small mapping takes 2^order pages);
//   - dirty < BITS: a fully dirty block does not stay in the xarrays;
//   - a block with live mappings is never freed: every live small
//     mapping's block is still in the xarrays;
//   - free lists: each block is on at most one, the one of queue vb->cpu
//     (a possible CPU), and on it iff free > 0 and it is not purged (a
//     purged block has free 0 and is freed at once, so at quiescence
//     "listed iff free > 0").
// and allocator::check(), the full audit, finds nothing. After the drawn
// ops every mapping is unmapped op by op under the same checks.
#include "common.hpp"

#include <map>
#include <set>

namespace {

void check_accounting(harness::runner& r) {
    vmap::allocator& a = r.allocator();
    const unsigned bits = a.bbmap_bits();

    std::vector<vmap::vmap_block*> blocks = props::live_blocks(a);
    std::set<const void*> in_xa(blocks.begin(), blocks.end());

    // Pages the model's live mappings hold in each block.
    std::map<const void*, unsigned> held;
    for (const auto& m : r.model().live()) {
        if (!r.model().is_small(m->count))
            continue;
        if (!in_xa.count(m->block))
            RC_FAIL("the block that served the live mapping at " + props::hex(m->addr) +
                    " is no longer in the xarrays (freed with a live mapping)");
        held[m->block] += props::small_pages(a, m->count);
    }

    // Free-list membership, each list walked under its queue lock.
    std::map<const vmap::vmap_block*, std::vector<unsigned>> lists_of;
    for (unsigned cpu : a.cpus().possible_cpus()) {
        vmap::vmap_block_queue& q = a.queue(cpu);
        std::lock_guard<vmap::spinlock> g(q.lock);
        std::size_t steps = 0;
        vmap::list_for_each_rcu(q.free, [&](vmap::rcu_list_node* n) {
            lists_of[vmap::vmap_block::from_list(n)].push_back(cpu);
            return ++steps <= blocks.size(); // a cycle shows as too many entries
        });
        RC_ASSERT(steps <= blocks.size());
    }

    for (vmap::vmap_block* vb : blocks) {
        std::lock_guard<vmap::spinlock> g(vb->lock);
        const std::string b = "block " + props::hex(vb->va->va_start) + ": ";
        unsigned free = vb->free.load(std::memory_order_relaxed);
        unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
        unsigned used = vb->used_map.count();
        if (free + dirty + used != bits)
            RC_FAIL(b + "free " + std::to_string(free) + " + dirty " + std::to_string(dirty) +
                    " + used " + std::to_string(used) + " != BITS " + std::to_string(bits));
        RC_ASSERT(free <= bits);
        if (vb->used_map.next_set(bits - free) < bits)
            RC_FAIL(b + "page " + std::to_string(vb->used_map.next_set(bits - free)) +
                    " is used, at or above BITS - free = " + std::to_string(bits - free));
        if (used != held[vb])
            RC_FAIL(b + std::to_string(used) +
                    " pages used, but the live mappings it served "
                    "hold " +
                    std::to_string(held[vb]));
        if (dirty >= bits)
            RC_FAIL(b + "fully dirty but still in the xarrays");
        RC_ASSERT(a.cpus().possible(vb->cpu));
        auto it = lists_of.find(vb);
        std::size_t on = it == lists_of.end() ? 0 : it->second.size();
        if (on > 1)
            RC_FAIL(b + "on " + std::to_string(on) + " free lists");
        if (on == 1 && it->second[0] != vb->cpu)
            RC_FAIL(b + "on the free list of queue " + std::to_string(it->second[0]) +
                    ", but vb->cpu is " + std::to_string(vb->cpu));
        if ((on == 1) != (free > 0))
            RC_FAIL(b + (on ? "on a free list with no free pages"
                            : "has " + std::to_string(free) + " free pages but is on no list"));
        if (it != lists_of.end())
            lists_of.erase(it);
    }
    if (!lists_of.empty())
        RC_FAIL("a free list holds a block that is in no xarray");

    std::vector<std::string> v = a.check();
    if (!v.empty())
        RC_FAIL("allocator::check(): " + v.front());
}

void run(const props::config_draw& c, const std::vector<harness::op>& ops) {
    // check_every 0: the direct assertions above see a broken count first.
    harness::runner r(c.cfg, c.error_paths, props::throwing_options(0));
    auto step = [&r](const harness::op& o) {
        r.step(o);
        check_accounting(r);
    };
    for (const harness::op& o : ops)
        step(o);
    props::drain(r, step); // every block on its way out, too
    r.finish();
}

} // namespace

RC_GTEST_PROP(accounting, pages_and_free_lists_add_up_at_quiescence, ()) {
    props::config_draw c = *props::gen_config({});
    props::op_options opt;
    opt.error_paths = c.error_paths;
    run(c, *props::gen_ops(opt));
}

RC_GTEST_PROP(accounting, pages_add_up_in_small_exhausted_ranges, ()) {
    props::config_options copt;
    copt.exhaust = true;
    props::config_draw c = *props::gen_config(copt);
    props::op_options opt;
    opt.error_paths = c.error_paths;
    opt.map_weight = 60;
    run(c, *props::gen_ops(opt));
}
