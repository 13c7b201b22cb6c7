// SPDX-License-Identifier: MIT
// vmap/kva.hpp: handing address space out: alloc_vmap_area(), with the
// node pools' fast path and the purge-and-retry on exhaustion, and the pools
// themselves (mm/vmalloc.c, "Global kva allocator" and the vmap_node part).
//
// alloc_vmap_area(size, align, flags):
//   1. node_alloc(): with more than one node, the pool of this CPU's node
//      for `size` may hold a flushed area of that size; its first entry is
//      taken if aligned (else rotated to the tail, and the global tree is
//      used). Either way the area is tagged with this node's id, so that when
//      it is freed it returns to this node's pool.
//   2. Else __alloc_vmap_area() from the global free space.
//   3. On failure, once: reclaim_and_purge_vmap_areas() and retry step 2.
//      (The kernel then calls the vmap notifier chain, which has no users
//      here, and warns with pr_warn(): not a WARN.) Then -EBUSY: nullptr.
// free_vmap_area() returns an area at once; only areas that never had a
// translation may take that path (new_vmap_block()'s error path).
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

inline unsigned allocator::addr_to_node_id(unsigned long addr) const {
    return static_cast<unsigned>((addr / vmap_zone_size_) % nr_nodes_);
}

// size_to_va_pool(): pool i holds areas of i + 1 pages.
inline vmap_pool* allocator::size_to_va_pool(vmap_node& vn, unsigned long size) {
    unsigned long idx = (size - 1) >> cfg_.page_shift;
    return idx < MAX_VA_SIZE_PAGES ? &vn.pool[idx] : nullptr;
}

// node_pool_add_va(): a flushed area back to its node's pool, newest first.
// Takes `va` on success; leaves it with the caller if no pool fits its size.
inline bool allocator::node_pool_add_va(vmap_node& vn, std::unique_ptr<vmap_area>& va) {
    vmap_pool* vp = size_to_va_pool(vn, va->va_end - va->va_start);
    if (!vp)
        return false;
    std::lock_guard<spinlock> g(vn.pool_lock);
    // Allocatable again from here: stamped under the lock node_alloc takes.
    tlb_.release(vmap_area_allocator::kind_of(va->flags), va->va_start, va->va_end);
    vp->head.push_front(std::move(va));
    vp->entries.fetch_add(1, std::memory_order_relaxed);
    vp->len.store(vp->len.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
}

// node_pool_del_va(): the pool's first area if it is aligned and sane; a
// misaligned one goes to the tail and nothing is handed out.
inline std::unique_ptr<vmap_area> allocator::node_pool_del_va(vmap_node& vn, unsigned long size,
                                                              unsigned long align, unsigned flags) {
    vmap_pool* vp = size_to_va_pool(vn, size);
    if (!vp || vp->entries.load(std::memory_order_relaxed) == 0)
        return nullptr; // the kernel's unlocked list_empty()
    std::lock_guard<spinlock> g(vn.pool_lock);
    if (vp->head.empty())
        return nullptr;
    vmap_area* va = vp->head.front().get();
    if (va->va_start & (align - 1)) {
        vp->head.splice(vp->head.end(), vp->head, vp->head.begin());
        return nullptr;
    }
    bool err = va->va_end - va->va_start != size || va->va_start < vmalloc_start() ||
               va->va_end > vmalloc_end();
    if (VMAP_WARN_ON_ONCE(diag_, err,
                          "node_pool_del_va: pooled area " +
                              vmap_area_allocator::hex(va->va_start) + " does not fit its pool"))
        return nullptr;
    std::unique_ptr<vmap_area> own = std::move(vp->head.front());
    vp->head.pop_front();
    vp->entries.fetch_sub(1, std::memory_order_relaxed);
    vp->len.store(vp->len.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    // `flags` (the new user's, for the event only): the kernel's signature
    // has none.
    tlb_.hand_out(vmap_area_allocator::kind_of(flags), own->va_start, own->va_end);
    return own;
}

// node_alloc(): the fast path. *vn_id is this CPU's node, encoded, whenever
// there is more than one node, even if its pool had nothing.
inline std::unique_ptr<vmap_area> allocator::node_alloc(unsigned long size, unsigned long align,
                                                        unsigned flags, unsigned* vn_id) {
    *vn_id = 0;
    // The kernel also falls back for a range other than [VMALLOC_START,
    // VMALLOC_END); every request of vm_map_ram() is for the whole range.
    if (nr_nodes_ == 1)
        return nullptr;
    unsigned id = current_cpu(topo_) % nr_nodes_;
    std::unique_ptr<vmap_area> va = node_pool_del_va(nodes_[id], size, align, flags);
    *vn_id = encode_vn_id(id, nr_nodes_);
    return va;
}

// decay_va_pool_node(): returns a quarter of each pool (all of it with
// full_decay) to the global free space. The pool is detached under
// pool_lock, trimmed without it, and the rest put back with one list
// replacement and len written back: correct only if nothing adds to or
// decays the same pool meanwhile, which vmap_purge_lock ensures for its
// callers (ec05f51f1e65 gave the shrinker that lock too).
inline void allocator::decay_va_pool_node(vmap_node& vn, bool full_decay) {
    std::vector<std::unique_ptr<vmap_area>> decay;
    for (vmap_pool& vp : vn.pool) {
        if (vp.entries.load(std::memory_order_relaxed) == 0)
            continue; // the kernel's unlocked list_empty()
        std::list<std::unique_ptr<vmap_area>> tmp;
        {
            std::lock_guard<spinlock> g(vn.pool_lock);
            tmp.swap(vp.head); // detach the pool: list_replace_init()
            vp.entries.store(0, std::memory_order_relaxed);
        }
        unsigned long n_decay = vp.len.load(std::memory_order_relaxed);
        vp.len.store(0, std::memory_order_relaxed);
        unsigned long pool_len = n_decay;
        if (!full_decay)
            n_decay >>= 2; // ~25%
        pool_len -= n_decay;
        while (n_decay-- && !tmp.empty()) {
            decay.push_back(std::move(tmp.front()));
            tmp.pop_front();
        }
        if (!tmp.empty()) {
            std::lock_guard<spinlock> g(vn.pool_lock);
            vp.head.swap(tmp); // list_replace_init(): whatever was added meanwhile is dropped
            vp.entries.store(vp.head.size(), std::memory_order_relaxed);
            vp.len.store(pool_len, std::memory_order_relaxed);
        }
        // What list_replace_init() dropped is unreachable in the kernel; keep
        // it so (the area allocator still counts it out, so the audit and
        // the drained-range check see the leak) without leaking it from the
        // process: the allocator frees it when it dies.
        if (!tmp.empty()) {
            std::lock_guard<std::mutex> g(leaked_lock_);
            for (std::unique_ptr<vmap_area>& lost : tmp)
                leaked_.push_back(std::move(lost));
        }
    }
    areas_.reclaim(decay); // reclaim_list_global()
}

inline vmap_area* allocator::alloc_vmap_area(unsigned long size, unsigned long align,
                                             unsigned flags) {
    unsigned vn_id = 0;
    std::unique_ptr<vmap_area> va = node_alloc(size, align, flags, &vn_id);
    bool purged = false;
    while (!va) {
        va = areas_.carve_area(size, align, flags);
        if (va)
            break;
        if (purged)
            return nullptr; // -EBUSY
                            // overflow: reclaim what fragmented blocks and lazy areas hold on
                            // every CPU and node, then try once more. (The harness's
                            // check_exhausted() judges every no_space by this rule.)
#if defined(VMAP_BUG_VARIANT_NO_PURGE_ON_EXHAUSTION)
        // BUG VARIANT no_purge_on_exhaustion (this port, to prove the
        // no_space check): only the current CPU's fragmented blocks are
        // purged; other CPUs keep theirs and the request fails.
        {
            std::lock_guard<spinlock> pl(purge_lock_);
            purge_fragmented_blocks(current_cpu(topo_));
            purge_vmap_area_lazy(ULONG_MAX, 0, true);
        }
#else
        reclaim_and_purge_vmap_areas();
#endif
        purged = true;
    }
    va->flags = flags | vn_id;
    // An empty page table for a large mapping: a pooled area's old one must
    // not survive into its next life.
    va->pages.reset();
    if ((flags & VMAP_FLAGS_MASK) == VMAP_RAM)
        va->pages = std::make_unique<std::atomic<std::byte*>[]>(size >> cfg_.page_shift);
    return areas_.insert_busy(std::move(va));
}

} // namespace vmap
