// SPDX-License-Identifier: MIT
// vmap/audit.hpp: allocator::check(), the full invariant audit.
//
// Run on a quiescent allocator (no operation in flight; readers elsewhere
// are fine). It takes the same locks the allocator does, changes nothing,
// and reports every violation it finds as one sentence, so a fuzzer's crash
// message names the broken invariant rather than the first symptom.
//
// What it checks, structure by structure:
//   xarrays   - shape (xarray::audit); each block sits in the xarray its
//               address hashes to, at its own key, exactly once.
//   blocks    - its area is a live, block-sized, block-aligned VMAP_BLOCK
//               area; free + dirty + used == BITS; used bits below
//               BITS - free; the dirty range inside the handed-out part;
//               allocation records tile the used bits; pages mapped only
//               where used; vb->cpu a possible CPU.
//   free lists- neighbours point back; each block on at most one list, the
//               one of queue vb->cpu, and on it iff free > 0; nothing on a
//               list that is not in an xarray.
//   areas     - vmap_area_allocator::audit; every VMAP_BLOCK area has its
//               block; the live-block counter matches.
//   nodes     - lazy lists and pools (vmap_node.hpp): each pool's len is its
//               length, each pooled area has its pool's size and its node's
//               id; purge lists are empty; vmap_lazy_nr is the pages on the
//               lazy lists; the areas out of the area allocator are exactly
//               those on lazy lists and in pools, disjoint from each other
//               and from free and busy space.
// Not here: the TLB promise (no range handed out while a page of it may be
// stale). It is a property of the history, not of one state, so the
// harness's TLB model judges it from the stamped TLB log (tlb_log.hpp,
// fuzz/harness/tlb.hpp); check() only sees that unlinked areas are counted.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace vmap {

inline std::vector<std::string> allocator::check() {
    std::vector<std::string> out;
    VMAP_BUG(rcu::in_reader(), "allocator::check() inside an RCU read-side section");
    auto hex = vmap_area_allocator::hex;

    // Busy areas first (the blocks' va pointers are checked against them).
    std::map<unsigned long, unsigned> area_flags;
    areas_.audit(out);
    areas_.for_each_busy([&](const vmap_area& va) { area_flags[va.va_start] = va.flags; });

    // xarrays and their blocks.
    std::map<vmap_block*, unsigned long> blocks; // block -> va_start
    for_each_xarray([&](xarray<vmap_block>& xa, unsigned cpu) {
        std::string name = cpu == UINT_MAX ? std::string("global xarray")
                                           : "xarray of queue " + std::to_string(cpu);
        xa.audit(out, name);
        xa.for_each([&](std::uint64_t key, vmap_block* vb) {
            unsigned long va_start = vb->va->va_start;
            if (!blocks.emplace(vb, va_start).second)
                out.push_back("block " + hex(va_start) + " is in the xarrays twice");
            if (addr_to_vb_idx(va_start) != key)
                out.push_back("block " + hex(va_start) + " is stored at key " +
                              std::to_string(key) + ", not at addr_to_vb_idx " +
                              std::to_string(addr_to_vb_idx(va_start)));
            if (&addr_to_vb_xa(va_start) != &xa)
                out.push_back("block " + hex(va_start) + " is in " + name +
                              " but its address hashes to queue " +
                              std::to_string(addr_to_vb_cpu(va_start)));
        });
    });

    std::size_t block_areas = 0;
    for (auto& [start, flags] : area_flags) {
        if (!(flags & VMAP_BLOCK))
            continue;
        ++block_areas;
        vmap_block* vb = find_block(start);
        if (!vb || vb->va->va_start != start)
            out.push_back("block area " + hex(start) + " has no block in the xarrays (leaked)");
    }
    if (block_areas != blocks.size())
        out.push_back(std::to_string(block_areas) + " block areas but " +
                      std::to_string(blocks.size()) + " blocks in the xarrays");
    if (blocks_live_.load(std::memory_order_relaxed) != blocks.size())
        out.push_back("live-block counter " + std::to_string(blocks_live_.load()) + " but " +
                      std::to_string(blocks.size()) + " blocks in the xarrays");

    // Each block, under its lock.
    for (auto& [vb, va_start] : blocks) {
        std::lock_guard<spinlock> g(vb->lock);
        // Built only for a report: a clean audit allocates no strings per block.
        auto b = [&, va_start = va_start] { return "block " + hex(va_start) + ": "; };
        auto it = area_flags.find(va_start);
        if (it == area_flags.end() || !(it->second & VMAP_BLOCK))
            out.push_back(b() + "its vmap_area is not a live VMAP_BLOCK area");
        if (vb->va->va_end - va_start != block_size_ || va_start % block_size_)
            out.push_back(b() + "its area is not one aligned block");
        if (!topo_.possible(vb->cpu))
            out.push_back(b() + "vb->cpu " + std::to_string(vb->cpu) + " is not a possible CPU");
        unsigned free = vb->free.load(std::memory_order_relaxed);
        unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
        unsigned used = vb->used_map.count();
        if (free + dirty + used != bits_)
            out.push_back(b() + "free " + std::to_string(free) + " + dirty " +
                          std::to_string(dirty) + " + used " + std::to_string(used) +
                          " != " + std::to_string(bits_) + " pages");
        if (free <= bits_ && vb->used_map.next_set(bits_ - free) < bits_)
            out.push_back(b() + "a used page lies in the free tail (at or above BITS - free)");
        if (vb->dirty_max != 0 &&
            (vb->dirty_min >= vb->dirty_max || vb->dirty_max > bits_ - std::min(free, bits_)))
            out.push_back(b() + "dirty range [" + std::to_string(vb->dirty_min) + ", " +
                          std::to_string(vb->dirty_max) + ") is outside the handed-out pages");
        if (dirty == bits_)
            out.push_back(b() + "fully dirty but still in the xarray (not freed)");
        // Allocation records tile the used bits exactly.
        unsigned covered = 0;
        for (unsigned o = 0; o < bits_; ++o) {
            unsigned rec = vb->alloc_order[o];
            if (!rec)
                continue;
            unsigned len = 1u << (rec - 1);
            if (o + len > bits_ || !vb->used_map.all_set(o, len)) {
                out.push_back(b() + "allocation at page " + std::to_string(o) +
                              " is not fully marked used");
                continue;
            }
            covered += len;
        }
        if (covered != used)
            out.push_back(b() + std::to_string(used) + " used pages but live allocations cover " +
                          std::to_string(covered));
        for (unsigned o = 0; o < bits_; ++o)
            if (vb->pages[o].load(std::memory_order_relaxed) && !vb->used_map.test(o))
                out.push_back(b() + "page " + std::to_string(o) + " is mapped but not used");
    }

    // Free lists, each under its queue lock.
    std::set<vmap_block*> listed;
    for (unsigned cpu : topo_.possible_cpus()) {
        vmap_block_queue& vbq = queues_[cpu];
        std::lock_guard<spinlock> g(vbq.lock);
        auto q = [cpu] { return "free list of queue " + std::to_string(cpu) + ": "; };
        const rcu_list_node* prev = &vbq.free;
        std::size_t steps = 0;
        for (rcu_list_node* n = vbq.free.next.load(); n != &vbq.free; n = n->next.load()) {
            if (++steps > blocks.size() + 1) {
                out.push_back(q() + "longer than the number of blocks (a cycle?)");
                break;
            }
            if (n->prev != prev)
                out.push_back(q() + "a node's prev does not point back at its predecessor");
            prev = n;
            vmap_block* vb = vmap_block::from_list(n);
            auto it = blocks.find(vb);
            if (it == blocks.end()) {
                out.push_back(q() + "holds a block that is in no xarray (freed?)");
                continue;
            }
            auto b = [&, va_start = it->second] { return "block " + hex(va_start) + " "; };
            if (!listed.insert(vb).second)
                out.push_back(q() + b() + "is on free lists twice");
            if (vb->cpu != cpu)
                out.push_back(q() + b() + "belongs to queue " + std::to_string(vb->cpu));
            if (vb->free.load(std::memory_order_relaxed) == 0)
                out.push_back(q() + b() + "has no free pages but is listed");
        }
        if (vbq.free.prev != prev)
            out.push_back(q() + "head->prev is not the last node");
    }
    for (auto& [vb, va_start] : blocks)
        if (vb->free.load(std::memory_order_relaxed) > 0 && !listed.count(vb))
            out.push_back("block " + hex(va_start) + " has free pages but is on no free list");

    // Lazy lists and pools.
    std::map<unsigned long, unsigned long> waiting; // start -> end, lazy or pooled
    unsigned long waiting_bytes = 0;
    long lazy_pages = 0;
    // Names are built only for a violation: a check visits 256 pools a node.
    auto node_name = [](unsigned id) { return "node " + std::to_string(id); };
    auto pool_name = [&](unsigned id, unsigned i) {
        return node_name(id) + " pool " + std::to_string(i);
    };
    auto note = [&](const vmap_area& va, auto where) {
        auto [it, fresh] = waiting.emplace(va.va_start, va.va_end);
        auto next = std::next(it);
        if (!fresh || (it != waiting.begin() && std::prev(it)->second > va.va_start) ||
            (next != waiting.end() && next->first < va.va_end))
            out.push_back(where() + " area " + hex(va.va_start) + " overlaps another lazy or " +
                          "pooled area");
        if (areas_.overlaps_free_or_busy(va.va_start, va.va_end))
            out.push_back(where() + " area " + hex(va.va_start) + " overlaps free or busy space");
        waiting_bytes += va.va_end - va.va_start;
    };
    for (unsigned id = 0; id < nr_nodes_; ++id) {
        vmap_node& vn = nodes_[id];
        if (!vn.purge_list.empty())
            out.push_back(node_name(id) + ": purge list not empty outside a purge");
        {
            std::lock_guard<spinlock> g(vn.lazy_lock);
            for (auto& [start, va] : vn.lazy) {
                note(*va, [&] { return node_name(id) + " lazy"; });
                lazy_pages += static_cast<long>((va->va_end - va->va_start) >> cfg_.page_shift);
            }
        }
        std::lock_guard<spinlock> g(vn.pool_lock);
        for (unsigned i = 0; i < MAX_VA_SIZE_PAGES; ++i) {
            vmap_pool& vp = vn.pool[i];
            if (vp.len.load() != vp.head.size())
                out.push_back(pool_name(id, i) + ": len " + std::to_string(vp.len.load()) +
                              " but " + std::to_string(vp.head.size()) + " areas on its list");
            if (vp.entries.load() != vp.head.size())
                out.push_back(pool_name(id, i) + ": entries counter differs from its list");
            for (const std::unique_ptr<vmap_area>& va : vp.head) {
                note(*va, [&] { return pool_name(id, i); });
                if (va->va_end - va->va_start != (static_cast<unsigned long>(i) + 1)
                                                     << cfg_.page_shift)
                    out.push_back(pool_name(id, i) + ": area " + hex(va->va_start) + " is not " +
                                  std::to_string(i + 1) + " pages");
                if (decode_vn_id(va->flags, nr_nodes_) != id)
                    out.push_back(pool_name(id, i) + ": area " + hex(va->va_start) +
                                  " has another node's id");
            }
        }
    }
    if (lazy_pages != vmap_lazy_nr_.load())
        out.push_back("vmap_lazy_nr " + std::to_string(vmap_lazy_nr_.load()) + " but " +
                      std::to_string(lazy_pages) + " pages on the lazy lists");
    if (waiting_bytes != areas_.out_bytes())
        out.push_back("areas out of the free and busy trees hold " + hex(areas_.out_bytes()) +
                      " bytes, lazy lists and pools " + hex(waiting_bytes) +
                      " (an area lost on its way back)");
    return out;
}

} // namespace vmap
