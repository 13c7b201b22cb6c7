// SPDX-License-Identifier: MIT
// vmap/vb_alloc.hpp: small requests: vb_alloc() and new_vmap_block()
// (mm/vmalloc.c, "Per cpu kva allocator"). A request takes pages from a
// block on the current CPU's free list, or a new block.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

// The only way a block leaves a free list: under the lock of queue vb->cpu
// (8c61291fd850), with the list checked around the node.
inline void allocator::free_list_del(vmap_block* vb, vmap_block_queue& vbq) {
    vbq.lock.assert_held("free list change");
    VMAP_BUG(&vbq != &queues_[vb->cpu],
             "block " + vmap_area_allocator::hex(vb->va->va_start) +
                 " leaves a free list under the lock of another queue than its own (vb->cpu " +
                 std::to_string(vb->cpu) + ")");
    list_del_rcu(vb->free_list);
}

// new_vmap_block() in the kernel's order: the block's memory, its area
// (alloc_vmap_area() may sleep, and the thread may wake on another CPU),
// then the CPU, read only now, so the block may join another queue than the
// one vb_alloc() walked; then the xarray, then that CPU's free list.
inline allocator::vb_alloc_result allocator::new_vmap_block(unsigned long size, unsigned order) {
    if (fault(fault_site::vb_kmalloc)) // kmalloc_node(): -ENOMEM
        return {0, nullptr, errc::no_memory};
    auto* vb = new vmap_block(bits_);
    vmap_area* va = alloc_vmap_area(block_size_, block_size_, VMAP_RAM | VMAP_BLOCK);
    if (!va) {
        delete vb;
        return {0, nullptr, errc::no_space};
    }
    VMAP_SCHED_POINT(may_sleep, va);
    unsigned need = 1u << order;
    unsigned long vaddr = vmap_block_vaddr(va->va_start, 0);
    vb->va = va;
    vb->free.store(bits_ - need, std::memory_order_relaxed);
    vb->dirty.store(0, std::memory_order_relaxed);
    vb->dirty_min = bits_;
    vb->dirty_max = 0;
    vb->used_map.set(0, need);
    vb->alloc_order[0] = static_cast<unsigned char>(order + 1);
    tlb_.hand_out(range_kind::small, vaddr, vaddr + size);
    const unsigned cpu = current_cpu(topo_); // raw_smp_processor_id()
#if !defined(VMAP_BUG_VARIANT_CPU_AFTER_PUBLISH)
    vb->cpu = cpu; // before the block is visible to xarray walkers (3e3de7947c75)
#endif
    xarray<vmap_block>& xa = addr_to_vb_xa(va->va_start);
    VMAP_SCHED_POINT(publish, vb);
    xa_insert_result r = fault(fault_site::vb_xa_insert)
                             ? xa_insert_result::nomem
                             : xa.insert(addr_to_vb_idx(va->va_start), vb);
    VMAP_BUG(r == xa_insert_result::busy, "new_vmap_block: xarray slot for " +
                                              vmap_area_allocator::hex(va->va_start) +
                                              " is already taken");
    if (r != xa_insert_result::ok) {
        // The kernel's free_vmap_area(): at once, not lazily; the area was
        // never mapped.
        areas_.free(va);
        delete vb;
        return {0, nullptr, errc::no_memory};
    }
#if defined(VMAP_BUG_VARIANT_CPU_AFTER_PUBLISH)
    // BUG VARIANT cpu_after_publish (undoes 3e3de7947c75): vb->cpu is
    // written after the block is already in the xarray.
    VMAP_SCHED_POINT(publish, vb);
    vb->cpu = cpu;
#endif
    vmap_block_queue& vbq = queues_[vb->cpu];
    {
        std::lock_guard<spinlock> g(vbq.lock);
        list_add_tail_rcu(vb->free_list, vbq.free);
    }
    blocks_live_.fetch_add(1, std::memory_order_relaxed);
    blocks_created_.fetch_add(1, std::memory_order_relaxed);
    return {vaddr, vb, errc::ok};
}

inline allocator::vb_alloc_result allocator::vb_alloc(unsigned long size) {
    if (VMAP_WARN_ON(diag_, size > (static_cast<unsigned long>(cfg_.max_alloc) << cfg_.page_shift),
                     "vb_alloc of " + std::to_string(size) + " bytes") ||
        VMAP_WARN_ON_ONCE(diag_, size == 0, "vb_alloc of 0 bytes"))
        return {0, nullptr, errc::invalid_count};
    unsigned order = get_order(size, cfg_.page_shift);
    unsigned need = 1u << order;
    unsigned cpu = current_cpu(topo_);
    vmap_block_queue& vbq = queues_[cpu];
    {
        rcu::read_guard rcu;
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst)) {
            vmap_block* vb = vmap_block::from_list(n);
            VMAP_SCHED_POINT(precheck, vb);
#if defined(VMAP_BUG_VARIANT_RACY_FREE_READ)
            // BUG VARIANT racy_free_read (undoes 43d7650234c6): a plain read
            // of a field other CPUs write under vb->lock.
            if (*reinterpret_cast<unsigned*>(&vb->free) < need)
                continue;
#else
            if (vb->free.load(std::memory_order_relaxed) < need)
                continue;
#endif
            std::lock_guard<spinlock> g(vb->lock);
            unsigned free = vb->free.load(std::memory_order_relaxed);
            if (free < need)
                continue;
            unsigned pages_off = bits_ - free;
            unsigned long vaddr = vmap_block_vaddr(vb->va->va_start, pages_off);
            vb->used_map.set(pages_off, need);
            vb->alloc_order[pages_off] = static_cast<unsigned char>(order + 1);
            vb->free.store(free - need, std::memory_order_relaxed);
            tlb_.hand_out(range_kind::small, vaddr, vaddr + size);
            if (free == need) {
                std::lock_guard<spinlock> q(vbq.lock);
                free_list_del(vb, vbq);
            }
            return {vaddr, vb, errc::ok};
        }
    }
    return new_vmap_block(size, order);
}

} // namespace vmap
