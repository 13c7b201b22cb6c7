// SPDX-License-Identifier: MIT
// vmap/map_ram.hpp: the API, vm_map_ram() and vm_unmap_ram(): a count
// of at most VMAP_MAX_ALLOC pages goes to the blocks, a larger one gets a
// vmap_area of its own (mm/vmalloc.c).
//
// vm_map_ram() allocates first and maps after, as the kernel does: between
// the two the range is handed out but reads as a hole. If mapping fails
// (vmap_pages_range()'s page-table allocation, config::inject_fault), the
// range is given back through vm_unmap_ram(), which also unmaps the pages
// mapped before the failure, and the caller gets errc::no_memory.
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

// vmap_pages_range(): fills the page table of the range at `addr` (the
// block's entries from `vb`, or the large area `va`'s). An injected failure
// maps the first half of the pages and fails, as a page-table allocation
// failing part way would. The entries are relaxed, as set_pte() and the
// readers' ptep_get() are: a reader is ordered after the pages' contents by
// vb->lock, the xarray's publication of a new block or the busy tree's lock,
// never by the entry, and a release here would give TSan an edge the kernel
// lacks.
inline bool allocator::vmap_pages_range(unsigned long addr, std::span<std::byte* const> pages,
                                        vmap_block* vb, vmap_area* va) {
    std::size_t n = pages.size();
    bool fail = fault(fault_site::vmap_pages_range);
    if (fail)
        n /= 2;
    if (vb) {
        unsigned off = static_cast<unsigned>((addr & (block_size_ - 1)) >> cfg_.page_shift);
        for (std::size_t i = 0; i < n; ++i)
            vb->pages[off + i].store(pages[i], std::memory_order_relaxed);
    } else {
        for (std::size_t i = 0; i < n; ++i)
            va->pages[i].store(pages[i], std::memory_order_relaxed);
    }
    return !fail;
}

inline map_result allocator::vm_map_ram(std::span<std::byte* const> pages) {
    std::size_t count = pages.size();
    for (std::byte* p : pages) {
        if (!cfg_.strict) {
            // The kernel maps whatever page_to_pfn(NULL) gives.
            VMAP_BUG(p == nullptr, "vm_map_ram: a null page (strict off)");
        } else if (VMAP_WARN_ON_ONCE(diag_, p == nullptr, "vm_map_ram: a null page")) {
            return {0, errc::invalid_page};
        }
    }
    unsigned long addr = 0;
    vmap_block* vb = nullptr;
    vmap_area* va = nullptr;
    if (count <= cfg_.max_alloc) {
        vb_alloc_result r = vb_alloc(count << cfg_.page_shift);
        if (r.err != errc::ok) {
#if defined(VMAP_BUG_VARIANT_ZERO_COUNT)
            // BUG VARIANT zero_count (undoes ac0476e8ca2e): vb_alloc's
            // ERR_PTR(-EINVAL) is handed back as if it were an address.
            if (r.err == errc::invalid_count)
                return {static_cast<unsigned long>(-22L), errc::ok};
#endif
            return {0, r.err};
        }
        addr = r.addr;
        vb = r.vb;
    } else {
        // Ours: a count larger than the range fails before any purge (and
        // before count << PAGE_SHIFT could overflow); the kernel purges
        // first, to the same end.
        if (count > (cfg_.vmalloc_size >> cfg_.page_shift))
            return {0, errc::no_space};
        va = alloc_vmap_area(count << cfg_.page_shift, page_size(), VMAP_RAM);
        if (!va)
            return {0, errc::no_space};
        addr = va->va_start;
    }
    if (!vmap_pages_range(addr, pages, vb, va)) {
#if !defined(VMAP_BUG_VARIANT_ROLLBACK_LEAK)
        vm_unmap_ram(addr, static_cast<unsigned>(count));
#else
        // BUG VARIANT rollback_leak (designed, for the fault injection):
        // the failed mapping is not given back; its range and the pages
        // mapped before the failure stay.
#endif
        return {0, errc::no_memory};
    }
    return {addr, errc::ok};
}

inline errc allocator::vm_unmap_ram(unsigned long addr, unsigned count) {
    // The kernel's BUG_ON(addr > VMALLOC_END) lets VMALLOC_END itself
    // through; strict refuses it too (no mapping can start there).
    const bool past_end = cfg_.strict ? addr >= vmalloc_end() : addr > vmalloc_end();
    if (VMAP_BUG_ON(diag_,
                    addr == 0 || addr < vmalloc_start() || past_end || (addr & (page_size() - 1)),
                    "vm_unmap_ram: bad address " + vmap_area_allocator::hex(addr)))
        return errc::bad_address;
    if (!cfg_.strict) {
        // The kernel's vb_free() takes get_order(0), which is undefined.
        VMAP_BUG(count == 0, "vm_unmap_ram of 0 pages (strict off)");
    } else if (VMAP_WARN_ON_ONCE(diag_, count == 0, "vm_unmap_ram of 0 pages")) {
        return errc::invalid_count;
    }
    if (count <= cfg_.max_alloc)
        return vb_free(addr, static_cast<unsigned long>(count) << cfg_.page_shift);
    std::unique_ptr<vmap_area> va;
    if (cfg_.strict) {
        // Ours: only a large mapping that starts at addr, of this size.
        bool wrong_size = false;
        va = areas_.find_unlink(addr, VMAP_RAM,
                                static_cast<unsigned long>(count) << cfg_.page_shift, &wrong_size);
        if (VMAP_WARN_ON_ONCE(diag_, wrong_size,
                              "vm_unmap_ram: the mapping at " + vmap_area_allocator::hex(addr) +
                                  " is not " + std::to_string(count) + " pages"))
            return errc::wrong_count;
    } else {
        // find_unlink_vmap_area(): whatever area contains addr.
        va = areas_.find_unlink_containing(addr);
    }
    if (VMAP_WARN_ON_ONCE(diag_, !va,
                          "vm_unmap_ram: no mapping starts at " + vmap_area_allocator::hex(addr)))
        return errc::not_mapped;
    // Unlinked: no lookup finds its pages. Stale translations may survive
    // until a lazy purge flushes the area, and only then is it reused.
    free_unmap_vmap_area(std::move(va));
    return errc::ok;
}

} // namespace vmap
