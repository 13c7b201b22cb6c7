// SPDX-License-Identifier: MIT
// vmap/vb_hash.hpp: the block lookup, addr_to_vb_xa() and addr_to_vb_idx()
// (mm/vmalloc.c, "Per cpu kva allocator"): which per-CPU xarray holds the
// block of an address, and at which key.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

inline unsigned allocator::hash_value(unsigned long addr) const {
    std::uint64_t block = addr >> block_shift_;
    // The same value as the modulo; a mask saves a 64-bit division on every
    // vb_free when nr_cpu_ids is a power of two (most machines, every bench).
    if (hash_mask_)
        return static_cast<unsigned>(block & *hash_mask_);
    return static_cast<unsigned>(block % topo_.nr_cpu_ids());
}

inline unsigned allocator::addr_to_vb_cpu(unsigned long addr) const {
#if defined(VMAP_BUG_VARIANT_SPARSE_CPU_HASH)
    // BUG VARIANT sparse_cpu_hash (undoes a34acf30b19b): hash modulo the
    // number of possible CPUs and trust the result to be a possible CPU.
    return static_cast<unsigned>((addr >> block_shift_) % topo_.num_possible());
#else
    return hash_fallback_[hash_value(addr)];
#endif
}

inline xarray<vmap_block>& allocator::addr_to_vb_xa(unsigned long addr) {
    if (cfg_.scheme == vb_scheme::global)
        return global_xa_;
    return queues_[addr_to_vb_cpu(addr)].vmap_blocks;
}

inline std::uint64_t allocator::addr_to_vb_idx(unsigned long addr) const {
#if defined(VMAP_BUG_VARIANT_VA_START_KEY)
    // BUG VARIANT va_start_key (v3 of the seed, fixed in v4): key by the
    // block's start address; the xarray needs 11 levels instead of 4.
    return addr & ~(block_size_ - 1);
#else
    if (cfg_.key == vb_key::va_start)
        return addr & ~(block_size_ - 1); // v3: addr_to_vb_va_start()
    std::uint64_t idx = (addr - (cfg_.vmalloc_start & ~(block_size_ - 1))) >> block_shift_;
    if (cfg_.key == vb_key::dense && cfg_.scheme == vb_scheme::per_cpu_hashed) {
        // (i / nr_cpu_ids) * n_q + rank_q(h): unique within queue q.
        const dense_slot& d = dense_[hash_value(addr)];
        return idx / topo_.nr_cpu_ids() * d.stride + d.rank;
    }
    return idx;
#endif
}

inline unsigned long allocator::vmap_block_vaddr(unsigned long va_start, unsigned long pages_off) {
    unsigned long addr = va_start + (pages_off << cfg_.page_shift);
    // v3 of the seed made the kernel's BUG_ON a WARN_ON_ONCE.
    VMAP_WARN_ON_ONCE(diag_, (addr & ~(block_size_ - 1)) != va_start,
                      "vmap_block_vaddr: page " + std::to_string(pages_off) +
                          " is outside the block at " + vmap_area_allocator::hex(va_start));
    return addr;
}

inline vmap_block* allocator::find_block(unsigned long addr) {
    if (addr < vmalloc_start() || addr >= vmalloc_end())
        return nullptr;
    return addr_to_vb_xa(addr).load(addr_to_vb_idx(addr));
}

template <class F>
void allocator::for_each_xarray(F&& f) {
    if (cfg_.scheme == vb_scheme::global) {
        f(global_xa_, UINT_MAX);
        return;
    }
    for (unsigned cpu : topo_.possible_cpus())
        f(queues_[cpu].vmap_blocks, cpu);
}

template <class F>
void allocator::for_each_block(F&& f) {
    for_each_xarray([&](xarray<vmap_block>& xa, unsigned) {
        xa.for_each([&](std::uint64_t, vmap_block* vb) { f(vb); });
    });
}

} // namespace vmap
