// SPDX-License-Identifier: MIT
// vmap/geometry.hpp: page and block geometry of the vmap_block scheme.
//
// The kernel fixes these at build time (mm/vmalloc.c: VMAP_MAX_ALLOC,
// VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE); the port makes them configuration so
// that tests can use small blocks and exhaust a small range quickly.
#pragma once

#include <bit>
#include <cstdint>

namespace vmap {

// Default range: the x86_64 4-level paging vmalloc area, as plain integers.
inline constexpr unsigned long default_vmalloc_start = 0xffffc90000000000UL;
inline constexpr unsigned long default_vmalloc_size = 32UL << 40; // 32 TiB

// Kernel: VMAP_MAX_ALLOC == BITS_PER_LONG pages go through blocks.
inline constexpr unsigned default_max_alloc = 64;

// Kernel: VMALLOC_SPACE used by the VMAP_BBMAP_BITS formula (64-bit).
inline constexpr unsigned long bbmap_vmalloc_space = 128UL << 30;

// VMAP_BBMAP_BITS = min(1024, max(2 * VMAP_MAX_ALLOC,
//                   VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16))
constexpr unsigned default_bbmap_bits(unsigned nr_cpus, unsigned page_shift = 12,
                                      unsigned max_alloc = default_max_alloc) {
    unsigned long pages = bbmap_vmalloc_space >> page_shift;
    unsigned long cpus = std::bit_ceil(nr_cpus == 0 ? 1UL : static_cast<unsigned long>(nr_cpus));
    unsigned long bits = pages / cpus / 16;
    if (bits < 2UL * max_alloc)
        bits = 2UL * max_alloc;
    if (bits > 1024)
        bits = 1024;
    return static_cast<unsigned>(bits);
}

// get_order(): the smallest order such that (PAGE_SIZE << order) >= size.
// Only meaningful for size > 0; callers reject size 0 first, as vb_alloc does.
constexpr unsigned get_order(unsigned long size, unsigned page_shift) {
    unsigned long pages = (size + (1UL << page_shift) - 1) >> page_shift;
    return pages <= 1 ? 0 : static_cast<unsigned>(std::bit_width(pages - 1));
}

} // namespace vmap
