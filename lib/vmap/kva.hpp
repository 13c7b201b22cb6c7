// SPDX-License-Identifier: MIT
// vmap/kva.hpp: the address-space lifecycle: alloc_vmap_area() with
// its purge-and-retry on exhaustion (mm/vmalloc.c, "Global kva allocator").
//
// Part of allocator.hpp, which includes it after the class; include
// <vmap/allocator.hpp>, not this file.
#pragma once

namespace vmap {

inline vmap_area* allocator::alloc_vmap_area(unsigned long size, unsigned long align,
                                             unsigned flags, std::span<std::byte* const> pages) {
    vmap_area* va = areas_.alloc(size, align, flags, pages);
    if (!va) {
        // The range is exhausted: reclaim what fragmented blocks hold on
        // every CPU and try once more, as alloc_vmap_area() does.
        purge_fragmented_blocks_allcpus();
        va = areas_.alloc(size, align, flags, pages);
    }
    return va;
}

} // namespace vmap
