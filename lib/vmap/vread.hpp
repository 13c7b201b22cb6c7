// SPDX-License-Identifier: MIT
// vmap/vread.hpp: reading the range as mapped: vread() (the
// vm_map_ram part of vread_iter(), vmap_ram_vread_iter()) and translate(),
// the MMU walk the tests use.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

// The page that block `vb` maps at the page-aligned `page_addr`, or nullptr.
// The caller holds vb->lock, so a concurrent unmap cannot free the page.
inline std::byte* allocator::block_page(vmap_block* vb, unsigned long page_addr) {
    unsigned off = static_cast<unsigned>((page_addr & (block_size_ - 1)) >> cfg_.page_shift);
    vb->lock.assert_held("block_page");
    return vb->used_map.test(off) ? vb->pages[off].load(std::memory_order_acquire) : nullptr;
}

inline void allocator::vread(unsigned long addr, std::span<std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        unsigned long a = addr + done;
        unsigned long page_addr = a & ~(page_size() - 1);
        unsigned long in_page = a - page_addr;
        std::size_t n = std::min<std::size_t>(page_size() - in_page, buf.size() - done);
        std::byte* out = buf.data() + done;
        bool copied = false;
        if (a >= addr && page_addr >= vmalloc_start() && page_addr < vmalloc_end()) {
            rcu::read_guard rcu;
            vmap_block* vb = addr_to_vb_xa(page_addr).load(addr_to_vb_idx(page_addr));
            if (vb) {
#if defined(VMAP_BUG_VARIANT_VREAD_UNLOCKED_COPY)
                // BUG VARIANT vread_unlocked_copy (this port, to prove the
                // cross-thread reader): the page is looked up under vb->lock
                // but copied after it is dropped, when its owner may have
                // unmapped and freed it.
                std::byte* p = nullptr;
                {
                    std::lock_guard<spinlock> g(vb->lock);
                    p = block_page(vb, page_addr);
                }
                if (p) {
                    std::memcpy(out, p + in_page, n);
                    copied = true;
                }
#else
                // vmap_ram_vread_iter(): copy what is mapped, under vb->lock,
                // which keeps vb_free() from unmapping it meanwhile.
                std::lock_guard<spinlock> g(vb->lock);
                if (std::byte* p = block_page(vb, page_addr)) {
                    std::memcpy(out, p + in_page, n);
                    copied = true;
                }
#endif
            } else {
                copied = areas_.with_area(page_addr, [&](vmap_area* va) {
                    if (!va || (va->flags & VMAP_FLAGS_MASK) != VMAP_RAM)
                        return false;
                    std::byte* p = va->pages[(page_addr - va->va_start) >> cfg_.page_shift].load(
                        std::memory_order_acquire);
                    if (!p)
                        return false;
                    std::memcpy(out, p + in_page, n);
                    return true;
                });
            }
        }
        if (!copied)
            std::memset(out, 0, n);
        done += n;
    }
}

inline std::byte* allocator::translate(unsigned long addr) {
    if (addr < vmalloc_start() || addr >= vmalloc_end())
        return nullptr;
    unsigned long page_addr = addr & ~(page_size() - 1);
    {
        rcu::read_guard rcu;
        vmap_block* vb = addr_to_vb_xa(page_addr).load(addr_to_vb_idx(page_addr));
        if (vb) {
            std::lock_guard<spinlock> g(vb->lock);
            std::byte* p = block_page(vb, page_addr);
            return p ? p + (addr - page_addr) : nullptr;
        }
    }
    return areas_.with_area(page_addr, [&](vmap_area* va) -> std::byte* {
        if (!va || (va->flags & VMAP_FLAGS_MASK) != VMAP_RAM)
            return nullptr;
        std::byte* p = va->pages[(page_addr - va->va_start) >> cfg_.page_shift].load(
            std::memory_order_acquire);
        return p ? p + (addr - page_addr) : nullptr;
    });
}

} // namespace vmap
