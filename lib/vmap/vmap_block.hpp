// SPDX-License-Identifier: MIT
// vmap/vmap_block.hpp: struct vmap_block and struct vmap_block_queue
// (mm/vmalloc.c), the two structures the seed patch changed.
//
// A vmap_block is one block-sized, block-aligned vmap_area cut into pages
// for small vm_map_ram() requests. Allocation bump-allocates from the front:
// the first BITS - free pages have been handed out, the last `free` have
// not. A freed range is not reusable until the whole block is: it becomes
// dirty (awaiting a TLB flush); when dirty == BITS the block is freed.
//
// Per block, at quiescence (audit.hpp checks each):
//   free + dirty + popcount(used_map) == BITS;
//   used_map bits lie below BITS - free;
//   dirty_max == 0 or dirty_min < dirty_max <= BITS - free;
//   on the free list of queue `cpu` iff free > 0 (a purged block has free 0);
//   found in addr_to_vb_xa(va_start) at addr_to_vb_idx(va_start).
//
// A vmap_block_queue exists per possible CPU and has two jobs since the
// seed patch: its free list holds the blocks that CPU allocates from, and
// its xarray is one bucket of a hash of *all* blocks by address (a block
// hashes to a queue that usually is not the one whose free list holds it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <vmap/bitmap.hpp>
#include <vmap/list.hpp>
#include <vmap/rcu.hpp>
#include <vmap/spinlock.hpp>
#include <vmap/vmap_area.hpp>
#include <vmap/xarray.hpp>

namespace vmap {

struct vmap_block;

// vb->free_list and vb->rcu_head: links that know their block (our
// container_of, without offsetof on a non-standard-layout type).
struct vb_list_node : rcu_list_node {
    vmap_block* vb = nullptr;
};
struct vb_rcu_head : rcu::head {
    vmap_block* vb = nullptr;
};

struct vmap_block {
    vb_rcu_head rcu_head;
    spinlock lock{"vb->lock"};
    vmap_area* va = nullptr;
    // Read without vb->lock (vb_alloc's pre-check, purge_fragmented_blocks):
    // atomics, the port of the kernel's READ_ONCE/WRITE_ONCE (43d7650234c6).
    std::atomic<unsigned> free{0};
    std::atomic<unsigned> dirty{0};
    unsigned dirty_min = 0, dirty_max = 0; // unflushed range, in pages
    // The queue whose free list holds this block: written before the block
    // is published (3e3de7947c75), read by xarray walkers.
    unsigned cpu = ~0u;
    vb_list_node free_list;
    bitmap used_map;
    // Our addition: order + 1 at the first page of each live allocation, 0
    // elsewhere. The kernel trusts vm_unmap_ram()'s caller; we use it to
    // refuse a wrong count or a double unmap before anything changes.
    std::unique_ptr<unsigned char[]> alloc_order;
    // The block's slice of the page table: the page mapped at each offset.
    std::unique_ptr<std::atomic<std::byte*>[]> pages;

    explicit vmap_block(unsigned bits)
        : used_map(bits), alloc_order(new unsigned char[bits]()),
          pages(new std::atomic<std::byte*>[bits]()) {
        free_list.vb = this;
        rcu_head.vb = this;
    }
    vmap_block(const vmap_block&) = delete;
    vmap_block& operator=(const vmap_block&) = delete;

    static vmap_block* from_list(rcu_list_node* n) { return static_cast<vb_list_node*>(n)->vb; }
    static vmap_block* from_rcu(rcu::head* h) { return static_cast<vb_rcu_head*>(h)->vb; }
};

// Cache-line aligned: the kernel's DEFINE_PER_CPU areas never share a line
// between CPUs, and neither may ours (one CPU's vbq->lock would bounce
// another's xa_lock).
struct alignas(64) vmap_block_queue {
    spinlock lock{"vbq->lock"};
    rcu_list_node free; // blocks this CPU allocates from (RCU list)
    xarray<vmap_block> vmap_blocks{"vbq->vmap_blocks.xa_lock"};

    vmap_block_queue() { list_init(free); }
};

} // namespace vmap
