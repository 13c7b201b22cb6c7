// SPDX-License-Identifier: MIT
// vmap/lazy.hpp: giving address space back, lazily (mm/vmalloc.c):
// free_vmap_area_noflush(), __purge_vmap_area_lazy(), purge_vmap_node(), the
// drain work, reclaim_and_purge_vmap_areas() and the pools' shrinker.
//
// A freed area keeps its stale translations until a TLB flush covers it, so
// it cannot go back to the free space at once. free_vmap_area_noflush() puts
// it on the lazy list of its node (the node it was allocated for, else the
// node of its address) and adds its pages to vmap_lazy_nr; past
// lazy_max_pages() the drain work is scheduled. A purge, always under
// vmap_purge_lock:
//   1. decays every node's pools (a quarter, or all on a full decay) and
//      takes every node's lazy list;
//   2. widens the caller's [start, end) by each list's first and last area
//      and issues one flush_tlb_kernel_range() over it;
//   3. purge_vmap_node(): each area goes to its node's pool if it carries a
//      node id, fits a pool and this is no full decay, else back to the free
//      space; vmap_lazy_nr drops by the node's pages at once, at the end.
// Nothing is returned before step 2's flush: that is the TLB promise.
// It returns whether it purged anything; _vm_unmap_aliases() flushes its own
// range only if not (vb_free.hpp).
//
// Differences (lib/vmap/KERNEL.md): the kernel hands a node's purge to a
// worker when vmap_lazy_nr is at least twice lazy_max_pages() and several
// nodes have lazy areas; here every node is purged inline by the caller,
// which changes who runs purge_vmap_node(), not what it does. The drain work
// is a flag and a function, run by whoever calls run_drain_work() (a fuzz
// operation, a scheduler step), so its interleavings replay exactly.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

// lazy_max_pages(): fls(num_online_cpus()) * (32 MiB / PAGE_SIZE). Every
// possible CPU is online here.
inline unsigned long allocator::lazy_max_pages() const {
    if (cfg_.lazy_max_pages)
        return cfg_.lazy_max_pages;
    unsigned long fls = static_cast<unsigned long>(std::bit_width(topo_.num_possible()));
    return fls * ((32UL << 20) >> cfg_.page_shift);
}

// free_vmap_area_noflush(): `va` is unlinked from the busy tree and its
// translations are gone, but may still be cached; it waits on a lazy list.
inline void allocator::free_vmap_area_noflush(std::unique_ptr<vmap_area> va) {
    const unsigned long nr_lazy_max = lazy_max_pages();
    const unsigned vn_id = decode_vn_id(va->flags, nr_nodes_);
    const long pages = static_cast<long>((va->va_end - va->va_start) >> cfg_.page_shift);
    const long nr_lazy = vmap_lazy_nr_.fetch_add(pages, std::memory_order_relaxed) + pages;
    // Back to the node that asked for it, so that it can refill its pool.
    vmap_node& vn = nodes_[vn_id < nr_nodes_ ? vn_id : addr_to_node_id(va->va_start)];
    {
        std::lock_guard<spinlock> g(vn.lazy_lock);
        unsigned long start = va->va_start;
        vn.lazy.emplace(start, std::move(va));
    }
    // After this point the area may be freed at any time.
    if (static_cast<unsigned long>(nr_lazy) > nr_lazy_max)
        drain_pending_.store(true, std::memory_order_relaxed); // schedule_work(&drain_vmap_work)
}

// free_unmap_vmap_area(): the page tables of a large mapping are cleared by
// the unlink (nothing finds its pages afterwards), so only the lazy free is
// left; the kernel's debug_pagealloc flush is off, as in production.
inline void allocator::free_unmap_vmap_area(std::unique_ptr<vmap_area> va) {
    free_vmap_area_noflush(std::move(va));
}

// The kernel's __purge_vmap_area_lazy() (C++ reserves the leading
// underscores). Caller holds vmap_purge_lock.
inline bool allocator::purge_vmap_area_lazy(unsigned long start, unsigned long end,
                                            bool full_pool_decay) {
    purge_lock_.assert_held("__purge_vmap_area_lazy");
    std::vector<unsigned> purge_nodes;
    for (unsigned i = 0; i < nr_nodes_; ++i) {
        vmap_node& vn = nodes_[i];
        vn.purge_list.clear();
        vn.skip_populate = full_pool_decay;
        decay_va_pool_node(vn, full_pool_decay);
        {
            std::lock_guard<spinlock> g(vn.lazy_lock);
            if (vn.lazy.empty())
                continue;
            for (auto& [s, va] : vn.lazy)
                vn.purge_list.push_back(std::move(va));
            vn.lazy.clear();
        }
#if defined(VMAP_BUG_VARIANT_ALIASES_NO_WIDEN)
        // BUG VARIANT aliases_no_widen (designed from the kernel's comment on
        // vm_unmap_aliases(): "after it returns, we can be sure that none of
        // the pages we have control over will have any aliases"): the flush
        // covers the lazy areas only, not the caller's range, so the blocks'
        // dirty ranges _vm_unmap_aliases() collected (and reset) go unflushed.
        if (purge_nodes.empty()) {
            start = ULONG_MAX;
            end = 0;
        }
#endif
        start = std::min(start, vn.purge_list.front()->va_start);
        end = std::max(end, vn.purge_list.back()->va_end);
        purge_nodes.push_back(i);
    }
    if (purge_nodes.empty())
        return false;
    unsigned long nr_purged_areas = 0;
#if defined(VMAP_BUG_VARIANT_RELEASE_BEFORE_FLUSH)
    // BUG VARIANT release_before_flush (this port's own order before the TLB
    // invariant was checked, re-expressed in the lazy purge): the purged
    // areas return to the free space and the pools before the flush, so
    // another CPU may map them while stale translations survive.
    for (unsigned i : purge_nodes) {
        purge_vmap_node(nodes_[i]);
        nr_purged_areas += nodes_[i].nr_purged;
    }
    tlb_.flush(start, end, flush_reason::lazy_purge);
#else
    tlb_.flush(start, end, flush_reason::lazy_purge);
    for (unsigned i : purge_nodes) {
        purge_vmap_node(nodes_[i]);
        nr_purged_areas += nodes_[i].nr_purged;
    }
#endif
    if (nr_purged_areas)
        lazy_purges_.fetch_add(1, std::memory_order_relaxed);
    return nr_purged_areas > 0;
}

// purge_vmap_node(): the node's purged areas, flushed, go to its pools or
// back to the free space.
inline void allocator::purge_vmap_node(vmap_node& vn) {
    std::vector<std::unique_ptr<vmap_area>> local;
    long nr_purged_pages = 0;
    vn.nr_purged = 0;
    for (std::unique_ptr<vmap_area>& va : vn.purge_list) {
        nr_purged_pages += static_cast<long>((va->va_end - va->va_start) >> cfg_.page_shift);
        vn.nr_purged++;
        if (decode_vn_id(va->flags, nr_nodes_) < nr_nodes_ && !vn.skip_populate &&
            node_pool_add_va(vn, va))
            continue;
        local.push_back(std::move(va)); // go back to global
    }
    vn.purge_list.clear();
    // Once per node (409faf8c97d5): vmap_lazy_nr stays high until here.
    vmap_lazy_nr_.fetch_sub(nr_purged_pages, std::memory_order_relaxed);
    areas_.reclaim(local); // reclaim_list_global()
}

inline std::uint64_t allocator::pooled_areas() const {
    std::uint64_t n = 0;
    for (unsigned i = 0; i < nr_nodes_; ++i)
        for (const vmap_pool& vp : nodes_[i].pool)
            n += vp.entries.load(std::memory_order_relaxed);
    return n;
}

inline bool allocator::lazy_area_covers(unsigned long addr) {
    for (unsigned i = 0; i < nr_nodes_; ++i) {
        vmap_node& vn = nodes_[i];
        std::lock_guard<spinlock> g(vn.lazy_lock);
        auto it = vn.lazy.upper_bound(addr);
        if (it != vn.lazy.begin() && addr < std::prev(it)->second->va_end)
            return true;
    }
    return false;
}

// drain_vmap_area_work(): the work function itself.
inline void allocator::drain_vmap_area_work() {
    std::lock_guard<spinlock> pl(purge_lock_);
    purge_vmap_area_lazy(ULONG_MAX, 0, false);
    drain_runs_.fetch_add(1, std::memory_order_relaxed);
}

inline bool allocator::run_drain_work() {
    // The pending bit is cleared as the work starts: a free that passes the
    // threshold meanwhile queues it again.
    if (!drain_pending_.exchange(false, std::memory_order_relaxed))
        return false;
    drain_vmap_area_work();
    return true;
}

inline void allocator::reclaim_and_purge_vmap_areas() {
    std::lock_guard<spinlock> pl(purge_lock_);
    purge_fragmented_blocks_allcpus();
    purge_vmap_area_lazy(ULONG_MAX, 0, true);
}

// vmap_node_shrink_count(): what the pools hold, by their counters.
inline unsigned long allocator::vmap_node_shrink_count() {
    unsigned long count = 0;
    for (unsigned i = 0; i < nr_nodes_; ++i)
        for (vmap_pool& vp : nodes_[i].pool)
            count += vp.len.load(std::memory_order_relaxed);
    return count;
}

// vmap_node_shrink_scan(): memory pressure empties every pool.
inline void allocator::vmap_node_shrink_scan() {
#if defined(VMAP_BUG_VARIANT_SHRINKER_NO_PURGE_LOCK)
    // BUG VARIANT shrinker_no_purge_lock (undoes ec05f51f1e65): the
    // shrinker decays the pools while a purge may be adding to them or
    // decaying them too.
#else
    // Serialised with every other decay and pool refill (ec05f51f1e65).
    std::lock_guard<spinlock> pl(purge_lock_);
#endif
    for (unsigned i = 0; i < nr_nodes_; ++i)
        decay_va_pool_node(nodes_[i], true);
}

} // namespace vmap
