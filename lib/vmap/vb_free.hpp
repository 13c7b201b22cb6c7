// SPDX-License-Identifier: MIT
// vmap/vb_free.hpp: small frees and block purging: vb_free(),
// free_vmap_block(), purge_fragmented_block(s)() and _vm_unmap_aliases()
// (mm/vmalloc.c, "Per cpu kva allocator"). A freed block's area goes on a
// lazy list (lazy.hpp); vm_unmap_aliases() ends with a lazy purge.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

inline void allocator::free_vmap_block(vmap_block* vb) {
    unsigned long va_start = vb->va->va_start;
    vmap_block* tmp = addr_to_vb_xa(va_start).erase(addr_to_vb_idx(va_start));
    VMAP_BUG(tmp != vb, "free_vmap_block: xa_erase at " + vmap_area_allocator::hex(va_start) +
                            " did not return this block");
    lock_stats s = vb->lock.stats();
    retired_vb_acq_.fetch_add(s.acquisitions, std::memory_order_relaxed);
    retired_vb_con_.fetch_add(s.contentions, std::memory_order_relaxed);
    // Every page was unmapped by vb_free() (free + dirty == BITS), but some
    // may be stale still: the area waits on a lazy list for a purge's flush.
    // vb->va dangles from here on, as in the kernel.
    free_vmap_area_noflush(areas_.unlink(vb->va));
    blocks_live_.fetch_sub(1, std::memory_order_relaxed);
    blocks_freed_.fetch_add(1, std::memory_order_relaxed);
    rcu::call(&vb->rcu_head, [](rcu::head* h) { rcu::free_poisoned(vmap_block::from_rcu(h)); });
}

// vb_free() in the kernel's three steps: under vb->lock the pages leave
// used_map; with no lock held their page-table entries are cleared
// (vunmap_range_noflush(), which may sleep); under vb->lock again the
// dirty range grows, and a block that is now all dirty is freed. Between
// the two sections a reader under vb->lock sees the pages unused but still
// mapped, and vm_unmap_aliases() cannot yet see them dirty, so it neither
// flushes nor is owed their range: the caller's own later flush or purge
// is. The scheduler may stop a thread there (sched_kind::vb_free_window).
inline errc allocator::vb_free(unsigned long addr, unsigned long size) {
    unsigned order = get_order(size, cfg_.page_shift);
    unsigned n = 1u << order;
    unsigned offset = static_cast<unsigned>((addr & (block_size_ - 1)) >> cfg_.page_shift);
    // Strict: keeps a double unmap from reading a freed block. The kernel
    // has no guard: the caller's live mapping keeps the block alive.
    std::optional<rcu::read_guard> rcu;
    if (cfg_.strict)
        rcu.emplace();
    vmap_block* vb = addr_to_vb_xa(addr).load(addr_to_vb_idx(addr));
    if (!cfg_.strict) {
        // The kernel dereferences NULL; its bitmap_clear() would write past
        // used_map. Both are caller bugs it does not check.
        VMAP_BUG(!vb, "vm_unmap_ram: no vmap_block maps " + vmap_area_allocator::hex(addr) +
                          " (strict off)");
        VMAP_BUG(offset + n > bits_, "vm_unmap_ram: " + vmap_area_allocator::hex(addr) + " + " +
                                         std::to_string(n) + " pages crosses its block's end");
    } else if (VMAP_BUG_ON(diag_, !vb,
                           "vm_unmap_ram: no vmap_block maps " + vmap_area_allocator::hex(addr))) {
        return errc::not_mapped;
    }
    {
        std::lock_guard<spinlock> g(vb->lock);
        if (cfg_.strict) {
            unsigned rec = vb->alloc_order[offset];
            if (VMAP_BUG_ON(diag_, rec == 0,
                            "vm_unmap_ram: " + vmap_area_allocator::hex(addr) +
                                " is not the start of a live mapping (double unmap?)"))
                return errc::not_mapped;
            if (VMAP_BUG_ON(diag_, rec != order + 1,
                            "vm_unmap_ram: " + vmap_area_allocator::hex(addr) + " maps " +
                                std::to_string(1u << (rec - 1)) + " pages, not " +
                                std::to_string(n)))
                return errc::wrong_count;
        }
        vb->used_map.clear(offset, n);
        vb->alloc_order[offset] = 0;
#if defined(VMAP_BUG_VARIANT_DIRTY_BEFORE_UNMAP)
        // BUG VARIANT dirty_before_unmap (designed, for vb_free's window):
        // the dirty range is published in the first section, before the
        // page-table entries are cleared, so a vm_unmap_aliases() in the
        // window flushes the range before it is unmapped and then forgets
        // it (dirty_min/dirty_max reset): the translations it leaves are
        // never flushed.
        vb->dirty_min = std::min(vb->dirty_min, offset);
        vb->dirty_max = std::max(vb->dirty_max, offset + n);
#endif
    }
    VMAP_SCHED_POINT(vb_free_window, vb);
    // vunmap_range_noflush(): the kernel clears `size` bytes' worth of
    // entries, not the order's 2^order pages, so an unmap with a smaller
    // count of the same order leaves pages mapped. Strict accepts such a
    // count (the order is the request) and clears the whole order.
    unsigned long clear_pages = cfg_.strict ? n : size >> cfg_.page_shift;
    for (unsigned long i = 0; i < clear_pages; ++i)
        vb->pages[offset + i].store(nullptr, std::memory_order_relaxed);
    tlb_.unmap(range_kind::small, addr, addr + size); // stale until flushed
    std::unique_lock<spinlock> g(vb->lock);
#if !defined(VMAP_BUG_VARIANT_DIRTY_BEFORE_UNMAP)
    vb->dirty_min = std::min(vb->dirty_min, offset);
    vb->dirty_max = std::max(vb->dirty_max, offset + n);
#endif
    unsigned dirty = vb->dirty.load(std::memory_order_relaxed) + n;
    vb->dirty.store(dirty, std::memory_order_relaxed);
    if (dirty == bits_) {
        VMAP_BUG(vb->free.load(std::memory_order_relaxed) != 0,
                 "vb_free: block fully dirty with free pages left");
        g.unlock();
        free_vmap_block(vb);
    }
    return errc::ok;
}

// Caller holds vb->lock.
inline bool allocator::purge_fragmented_block(vmap_block* vb, std::vector<vmap_block*>& purge_list,
                                              bool force) {
    vb->lock.assert_held("purge_fragmented_block");
    // Read first, as the kernel does (it computes vbq on its first line): a
    // walker reads vb->cpu of every block it visits (3e3de7947c75).
    const unsigned cpu = vb->cpu;
    unsigned free = vb->free.load(std::memory_order_relaxed);
    unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
    if (free + dirty != bits_ || dirty == bits_)
        return false;
#if !defined(VMAP_BUG_VARIANT_EAGER_PURGE)
    // Don't purge usable blocks unless asked to (77e50af07f14).
    if (!(force || free < purge_threshold()))
        return false;
#else
    // BUG VARIANT eager_purge (undoes 77e50af07f14): every fragmented block
    // is purged, however many free pages it still has.
    (void)force;
#endif
    vb->free.store(0, std::memory_order_relaxed);      // no further allocations
    vb->dirty.store(bits_, std::memory_order_relaxed); // not purged again
    vb->dirty_min = 0;
    vb->dirty_max = bits_;
#if defined(VMAP_BUG_VARIANT_WRONG_VBQ_LOCK)
    // BUG VARIANT wrong_vbq_lock (undoes 8c61291fd850): the queue chosen by
    // the address hash, not the one whose free list holds the block.
    vmap_block_queue& vbq = queues_[addr_to_vb_cpu(vb->va->va_start)];
    (void)cpu;
#else
    vmap_block_queue& vbq = queues_[cpu];
#endif
    {
        std::lock_guard<spinlock> q(vbq.lock);
        free_list_del(vb, vbq);
    }
    purge_list.push_back(vb);
    blocks_purged_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

inline void allocator::free_purged_blocks(std::vector<vmap_block*>& purge_list) {
    for (vmap_block* vb : purge_list)
        free_vmap_block(vb);
    purge_list.clear();
}

inline void allocator::purge_fragmented_blocks(unsigned cpu) {
    std::vector<vmap_block*> purge;
    vmap_block_queue& vbq = queues_[cpu];
    {
        rcu::read_guard rcu;
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst)) {
            vmap_block* vb = vmap_block::from_list(n);
            VMAP_SCHED_POINT(precheck, vb);
            unsigned free = vb->free.load(std::memory_order_relaxed);
            unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
            if (free + dirty != bits_ || dirty == bits_)
                continue;
            std::lock_guard<spinlock> g(vb->lock);
            purge_fragmented_block(vb, purge, true);
        }
    }
    free_purged_blocks(purge);
}

inline void allocator::purge_fragmented_blocks_allcpus() {
    for (unsigned cpu : topo_.possible_cpus())
        purge_fragmented_blocks(cpu);
}

inline void allocator::vm_unmap_aliases() {
    std::lock_guard<spinlock> pl(purge_lock_);
    std::vector<vmap_block*> purge;
    unsigned long start = ULONG_MAX, end = 0;
    bool flush = false;
    auto visit = [&](vmap_block* vb) {
        std::lock_guard<spinlock> g(vb->lock);
#if defined(VMAP_BUG_VARIANT_VA_AFTER_FREE)
        // BUG VARIANT va_after_free (undoes ad216c0316ad): reads vb->va of a
        // block whose area may already be freed (dirty == BITS).
        unsigned long va_start = vb->va->va_start;
#endif
        // Purge a fragmented block if worth it; else collect its dirty range.
        if (!purge_fragmented_block(vb, purge, false) && vb->dirty_max &&
            vb->dirty.load(std::memory_order_relaxed) != bits_) {
#if !defined(VMAP_BUG_VARIANT_VA_AFTER_FREE)
            unsigned long va_start = vb->va->va_start;
#endif
            unsigned long s =
                va_start + (static_cast<unsigned long>(vb->dirty_min) << cfg_.page_shift);
            unsigned long e =
                va_start + (static_cast<unsigned long>(vb->dirty_max) << cfg_.page_shift);
            start = std::min(s, start);
            end = std::max(e, end);
#if !defined(VMAP_BUG_VARIANT_REFLUSH_DIRTY)
            // Flushed now: not again (a09fad96ffb1).
            vb->dirty_min = bits_;
            vb->dirty_max = 0;
#endif
            flush = true;
        }
    };
#if defined(VMAP_BUG_VARIANT_STALE_FULL_BLOCKS)
    // BUG VARIANT stale_full_blocks (undoes fc1e0d980037): walk the free
    // lists, which miss every full block (free == 0) and its dirty pages.
    for (unsigned cpu : topo_.possible_cpus()) {
        rcu::read_guard rcu;
        vmap_block_queue& vbq = queues_[cpu];
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst))
            visit(vmap_block::from_list(n));
    }
#else
    // Walk the xarrays (every block), not the free lists (fc1e0d980037).
    for_each_xarray([&](xarray<vmap_block>& xa, unsigned) {
        rcu::read_guard rcu;
        xa.for_each([&](std::uint64_t, vmap_block* vb) { visit(vb); });
    });
#endif
    free_purged_blocks(purge); // their areas go lazy: the purge below flushes them
    // The lazy purge flushes [start, end) widened by every lazy area; only
    // if there was none does the caller flush its own range.
    if (!purge_vmap_area_lazy(start, end, false) && flush)
        tlb_.flush(start, end, flush_reason::unmap_aliases);
}

} // namespace vmap
