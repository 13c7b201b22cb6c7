// SPDX-License-Identifier: MIT
// vmap/vmap_node.hpp: struct vmap_node (mm/vmalloc.c, since 72210662c5a2):
// where a freed area waits before it can be handed out again.
//
// The kernel splits the address-space bookkeeping over nr_vmap_nodes nodes
// (num_possible_cpus() clamped to [1, 128]; config::vmap_nodes). Each has
//   lazy       areas freed by free_vmap_area_noflush() whose translations
//              may still be in some TLB, sorted by address (lazy.root/head,
//              under lazy.lock);
//   purge_list the lazy areas a purge took, between its one TLB flush and
//              their return (__purge_vmap_area_lazy(), purge_vmap_node());
//   pool[i]    flushed areas of i + 1 pages (up to MAX_VA_SIZE_PAGES), kept
//              for node_alloc() to hand out again without touching the
//              global free tree (under pool_lock; len is read without it).
// The busy tree, which the kernel also splits per node, decides nothing
// about when an area may be reused; the port keeps one (vmap_area.hpp).
//
// Node ids live in va->flags above the type byte, encoded as id + 1 so that
// 0 means "no node": an area that did not come through node_alloc() (one
// node, or a range other than the whole vmalloc space) carries no id and
// never enters a pool.
//
// Invariants (audit.hpp), at quiescence: every pool's len equals its length
// and every area in pool[i] has i + 1 pages and the node's id; purge lists
// are empty; vmap_lazy_nr equals the pages on all lazy lists; the areas on
// lazy lists and in pools are exactly those the area allocator counts as out.
#pragma once

#include <array>
#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <vector>

#include <vmap/spinlock.hpp>
#include <vmap/vmap_area.hpp>

namespace vmap {

// MAX_VA_SIZE_PAGES: pools hold areas of 1..256 pages.
inline constexpr unsigned MAX_VA_SIZE_PAGES = 256;

struct vmap_pool {
    std::list<std::unique_ptr<vmap_area>> head; // newest first (list_add)
    // READ_ONCE/WRITE_ONCE in the kernel: written under pool_lock and, by
    // decay_va_pool_node(), outside it.
    std::atomic<unsigned long> len{0};
    // Ours: the list's true length, kept under pool_lock and read without it
    // where the kernel reads list_empty() unlocked (a racy read of a
    // std::list would be undefined; the kernel's READ_ONCE of a pointer is
    // not). len is the kernel's counter, which a race can make wrong.
    std::atomic<unsigned long> entries{0};
};

struct vmap_node {
    std::array<vmap_pool, MAX_VA_SIZE_PAGES> pool;
    spinlock pool_lock{"vn->pool_lock"};
    bool skip_populate = false; // this purge returns everything to the free tree

    spinlock lazy_lock{"vn->lazy.lock"};
    std::map<unsigned long, std::unique_ptr<vmap_area>> lazy; // by va_start

    std::vector<std::unique_ptr<vmap_area>> purge_list;
    unsigned long nr_purged = 0;
};

// encode_vn_id() / decode_vn_id(): the node id in va->flags, bits 8 and up.
inline unsigned encode_vn_id(unsigned id, unsigned nr_nodes) {
    return id < nr_nodes ? (id + 1) << 8 : 0;
}
// nr_nodes (not a valid id) for an area that carries none.
inline unsigned decode_vn_id(unsigned flags, unsigned nr_nodes) {
    unsigned v = flags >> 8;
    return v != 0 && v - 1 < nr_nodes ? v - 1 : nr_nodes;
}

} // namespace vmap
