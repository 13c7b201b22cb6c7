// SPDX-License-Identifier: MIT
// vmap/vmap.hpp: everything. The parts, bottom-up:
//   check.hpp       WARN_ON_ONCE / BUG_ON and their policies
//   current.hpp     the running task (`current`): what is kept per thread
//   sched_point.hpp scheduling points for the deterministic scheduler
//   rcu.hpp         read-side sections, synchronize, call (kfree_rcu)
//   spinlock.hpp    spinlock with lock_stat counters
//   cpu.hpp         possible-CPU masks, per-CPU storage, current CPU
//   bitmap.hpp      used_map
//   list.hpp        RCU-safe free lists
//   xarray.hpp      64-way radix tree with lock-free loads
//   tlb_log.hpp     what a TLB would see: unmaps, flushes, hand-outs, stamped
//   vmap_area.hpp   the VA-range allocator
//   vmap_block.hpp  struct vmap_block, struct vmap_block_queue
//   vmap_node.hpp   struct vmap_node: lazy lists and pools
//   allocator.hpp   config, the allocator class, construction and statistics;
//                   its parts, one per group of mm/vmalloc.c:
//     kva.hpp         alloc_vmap_area(), node_alloc() and the pools
//     lazy.hpp        free_vmap_area_noflush(), the lazy purge, the drain
//                     work, reclaim_and_purge_vmap_areas(), the shrinker
//     vb_hash.hpp     addr_to_vb_xa(), addr_to_vb_idx()
//     vb_alloc.hpp    vb_alloc(), new_vmap_block()
//     vb_free.hpp     vb_free(), purging, vm_unmap_aliases()
//     map_ram.hpp     vm_map_ram(), vm_unmap_ram()
//     vread.hpp       vread(), translate()
//   audit.hpp       allocator::check()
#pragma once

#include <vmap/allocator.hpp>
