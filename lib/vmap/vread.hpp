// SPDX-License-Identifier: MIT
// vmap/vread.hpp: reading the range as mapped: vread() (the kernel's
// vread_iter() with its vm_map_ram half, vmap_ram_vread_iter(), and
// aligned_vread_iter()) and translate(), the MMU walk the tests use.
//
// vread_iter() walks the busy areas from `addr` on, each under the area
// lock (the kernel's vn->busy.lock), so none can be unlinked while it is
// read; a hole between areas reads as zeros. A large vm_map_ram() area is
// read through its page table; a block's area through vmap_ram_vread_iter(),
// which takes vb->lock inside the area lock and copies used_map's set bit
// ranges, zeroing the holes between them, with the kernel's arithmetic:
//     n = ((re - rs + 1) << PAGE_SHIFT) - offset_in_page(addr)
// copied from the range's start plus offset_in_page(addr), for every range
// from the block's first. A read that starts past the first used page of a
// block therefore copies from an earlier page: what Linux does (6.3 to at
// least 6.19), and the project's finding vread_midblock
// (corpus/kernel-faithful/). VMAP_FIX_VREAD_MIDBLOCK, on in the default
// build (CMake VMAP_KERNEL_FIXES), measures the offset from the range's
// start and skips the ranges that end before `addr`. The "+ 1" reads one
// unused page more through the page table, which is harmless: that page is
// unmapped, or in vb_free()'s window still mapped to the owner that is
// unmapping it; the fix keeps it.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

// The page that block `vb` maps at the page-aligned `page_addr`, or nullptr
// if used_map says the page is not in use. The caller holds vb->lock, so a
// concurrent unmap cannot free the page.
inline std::byte* allocator::block_page(vmap_block* vb, unsigned long page_addr) {
    unsigned off = static_cast<unsigned>((page_addr & (block_size_ - 1)) >> cfg_.page_shift);
    vb->lock.assert_held("block_page");
    return vb->used_map.test(off) ? vb->pages[off].load(std::memory_order_relaxed) : nullptr;
}

// aligned_vread_iter(): [addr, addr + count) page by page through the page
// table (vmalloc_to_page(), here `page_of`), a missing page read as zeros.
// The caller's lock keeps every page it finds mapped during the copy.
template <class PageOf>
inline void allocator::aligned_vread(std::byte* out, unsigned long addr, std::size_t count,
                                     PageOf&& page_of) {
    while (count) {
        unsigned long offset = addr & (page_size() - 1);
        std::size_t length = std::min<std::size_t>(page_size() - offset, count);
        if (std::byte* p = page_of(addr - offset))
            std::memcpy(out, p + offset, length);
        else
            std::memset(out, 0, length);
        out += length;
        addr += length;
        count -= length;
    }
}

// vmap_ram_vread_iter(): [addr, addr + count), inside the area `va` of type
// `flags`. The caller holds the area lock.
inline void allocator::vmap_ram_vread(std::byte* out, unsigned long addr, std::size_t count,
                                      vmap_area* va, unsigned flags) {
    if (!(flags & VMAP_BLOCK)) {
        aligned_vread(out, addr, count, [&](unsigned long page_addr) {
            return va->pages[(page_addr - va->va_start) >> cfg_.page_shift].load(
                std::memory_order_relaxed);
        });
        return;
    }
    std::size_t remains = count;
    auto zero = [&](std::size_t n) {
        std::memset(out, 0, n);
        out += n;
        addr += n;
        remains -= n;
    };
    // xa_load() takes its own RCU read lock. The block cannot be freed once
    // it is found: free_vmap_block() needs the area lock we hold to unlink
    // its area before it frees it.
    vmap_block* vb = nullptr;
    {
        rcu::read_guard rcu;
        vb = addr_to_vb_xa(addr).load(addr_to_vb_idx(addr));
    }
    if (!vb) {
        zero(remains);
        return;
    }
    std::unique_lock<spinlock> g(vb->lock);
    const unsigned long block_start = vb->va->va_start;
    auto page_of = [&](unsigned long page_addr) -> std::byte* {
        unsigned long i = (page_addr - block_start) >> cfg_.page_shift;
        return i < bits_ ? vb->pages[i].load(std::memory_order_relaxed) : nullptr;
    };
    vb->used_map.for_each_set_range([&](unsigned rs, unsigned re) {
        if (remains == 0)
            return;
        unsigned long start = block_start + (static_cast<unsigned long>(rs) << cfg_.page_shift);
        if (addr < start) {
            zero(std::min<std::size_t>(start - addr, remains));
            if (remains == 0)
                return;
        }
#if defined(VMAP_FIX_VREAD_MIDBLOCK)
        // The fix: a range that ends at or before addr has nothing to give,
        // and the offset into a range is measured from its start.
        if (addr >= block_start + (static_cast<unsigned long>(re) << cfg_.page_shift))
            return;
#if defined(VMAP_BUG_VARIANT_VREAD_BLOCK_OFFSET)
        // BUG VARIANT vread_block_offset (designed, a vread arithmetic slip):
        // the fix's offset measured from the block's start, not the range's.
        unsigned long offset = addr - block_start;
#else
        unsigned long offset = addr - start;
#endif
#else
        // The kernel: "it could start reading from the middle of used
        // region", but only the offset within a page is kept.
        unsigned long offset = addr & (page_size() - 1);
#endif
        std::size_t n = (static_cast<std::size_t>(re - rs + 1) << cfg_.page_shift) - offset;
        n = std::min(n, remains);
#if defined(VMAP_BUG_VARIANT_VREAD_UNLOCKED_COPY)
        // BUG VARIANT vread_unlocked_copy (this port, to prove the
        // cross-thread reader): the pages are copied with vb->lock dropped,
        // when their owner may have unmapped and freed them.
        g.unlock();
        aligned_vread(out, start + offset, n, page_of);
        g.lock();
#else
        aligned_vread(out, start + offset, n, page_of);
#endif
        out += n;
        addr += n;
        remains -= n;
    });
    // The rest, dirty or free, reads as zeros.
    zero(remains);
}

// vread_iter(): returns the bytes read, which is all of them unless
// addr + size wraps past the top of the address space ("Don't allow
// overflow": the read stops there, the rest of `buf` is left alone).
inline std::size_t allocator::vread(unsigned long addr, std::span<std::byte> buf) {
    std::size_t count = buf.size();
    if (addr + count < count)
        count = -addr;
    std::size_t remains = count;
    std::byte* out = buf.data();
    auto zero = [&](std::size_t n) {
        std::memset(out, 0, n);
        out += n;
        addr += n;
        remains -= n;
    };
    std::unique_lock<spinlock> busy(areas_.lock());
    vmap_area* va = areas_.find_exceed_locked(addr);
    if (va && addr + remains > va->va_start) {
        while (va && remains) {
            unsigned flags = va->flags & VMAP_FLAGS_MASK;
            // A VMAP_BLOCK area is also VMAP_RAM (new_vmap_block()).
            VMAP_WARN_ON(diag_, flags == VMAP_BLOCK,
                         "vread: area " + vmap_area_allocator::hex(va->va_start) +
                             " is VMAP_BLOCK without VMAP_RAM");
            if (flags && addr < va->va_end) {
                if (addr < va->va_start) {
                    zero(std::min<std::size_t>(va->va_start - addr, remains));
                    if (remains == 0)
                        break;
                }
                std::size_t n = std::min<std::size_t>(va->va_end - addr, remains);
                // Every area here is vm_map_ram()'s: no vm_struct, no
                // ioremap. A VMAP_BLOCK-only area (the WARN above) would go
                // through the page table in the kernel; none exists here,
                // so it reads as a hole.
                if (flags & VMAP_RAM)
                    vmap_ram_vread(out, addr, n, va, flags);
                else
                    aligned_vread(out, addr, n, [](unsigned long) { return nullptr; });
                out += n;
                addr += n;
                remains -= n;
            }
            unsigned long next = va->va_end;
            busy.unlock();
            busy.lock();
            va = areas_.find_exceed_locked(next);
        }
    }
    busy.unlock();
    // Memory holes read as zeros.
    zero(remains);
    return count;
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
            std::memory_order_relaxed);
        return p ? p + (addr - page_addr) : nullptr;
    });
}

} // namespace vmap
