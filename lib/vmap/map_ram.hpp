// SPDX-License-Identifier: MIT
// vmap/map_ram.hpp: the API, vm_map_ram() and vm_unmap_ram(): a count
// of at most VMAP_MAX_ALLOC pages goes to the blocks, a larger one gets a
// vmap_area of its own (mm/vmalloc.c).
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

inline map_result allocator::vm_map_ram(std::span<std::byte* const> pages) {
    std::size_t count = pages.size();
    for (std::byte* p : pages)
        if (VMAP_WARN_ON_ONCE(diag_, p == nullptr, "vm_map_ram: a null page"))
            return {0, errc::invalid_page};
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
        unsigned offset = static_cast<unsigned>((r.addr & (block_size_ - 1)) >> cfg_.page_shift);
        for (std::size_t i = 0; i < count; ++i)
            r.vb->pages[offset + i].store(pages[i], std::memory_order_release);
        return {r.addr, errc::ok};
    }
    if (count > (cfg_.vmalloc_size >> cfg_.page_shift))
        return {0, errc::no_space};
    vmap_area* va = alloc_vmap_area(count << cfg_.page_shift, page_size(), VMAP_RAM, pages);
    if (!va)
        return {0, errc::no_space};
    return {va->va_start, errc::ok};
}

inline errc allocator::vm_unmap_ram(unsigned long addr, unsigned count) {
    if (VMAP_BUG_ON(diag_,
                    addr == 0 || addr < vmalloc_start() || addr >= vmalloc_end() ||
                        (addr & (page_size() - 1)),
                    "vm_unmap_ram: bad address " + vmap_area_allocator::hex(addr)))
        return errc::bad_address;
    if (VMAP_WARN_ON_ONCE(diag_, count == 0, "vm_unmap_ram of 0 pages"))
        return errc::invalid_count;
    if (count <= cfg_.max_alloc)
        return vb_free(addr, static_cast<unsigned long>(count) << cfg_.page_shift);
    bool wrong_size = false;
    std::unique_ptr<vmap_area> va = areas_.find_unlink(
        addr, VMAP_RAM, static_cast<unsigned long>(count) << cfg_.page_shift, &wrong_size);
    if (VMAP_WARN_ON_ONCE(diag_, wrong_size,
                          "vm_unmap_ram: the mapping at " + vmap_area_allocator::hex(addr) +
                              " is not " + std::to_string(count) + " pages"))
        return errc::wrong_count;
    if (VMAP_WARN_ON_ONCE(diag_, !va,
                          "vm_unmap_ram: no mapping starts at " + vmap_area_allocator::hex(addr)))
        return errc::not_mapped;
    // Unlinked: no lookup finds its pages. Stale translations may survive
    // until a lazy purge flushes the area, and only then is it reused.
    free_unmap_vmap_area(std::move(va));
    return errc::ok;
}

} // namespace vmap
