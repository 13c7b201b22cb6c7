// SPDX-License-Identifier: MIT
// harness/checks.hpp: the checks any caller of the allocator can make from
// outside, shared by the single-threaded runner and the threaded target.
// Each returns "" when all is well, else one sentence naming what broke.
#pragma once

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <vmap/allocator.hpp>

#include "model.hpp"

namespace harness {

inline std::string hex(unsigned long v) {
    return vmap::vmap_area_allocator::hex(v);
}

// A fresh mapping of `count` pages at `addr`: page aligned, inside the range,
// clear of the model's live mappings; a small one inside the block that
// find_block() names (returned in `block`), a large one in no block.
inline std::string check_new_mapping(vmap::allocator& a, const model& m, unsigned long addr,
                                     unsigned count, vmap::vmap_block*& block) {
    unsigned long bytes = static_cast<unsigned long>(count) * a.page_size();
    if (addr % a.page_size() || addr < a.vmalloc_start() || addr + bytes > a.vmalloc_end() ||
        addr + bytes < addr)
        return "vm_map_ram returned " + hex(addr) + ", not a page-aligned range inside " +
               hex(a.vmalloc_start()) + "-" + hex(a.vmalloc_end());
    if (m.overlaps(addr, bytes))
        return "vm_map_ram returned " + hex(addr) + ", overlapping a live mapping";
    block = a.find_block(addr);
    if (m.is_small(count)) {
        if (!block)
            return "small mapping at " + hex(addr) + " is in no block (find_block)";
        unsigned long start = block->va->va_start;
        if (addr < start || addr + bytes > start + a.block_size())
            return "small mapping at " + hex(addr) + " does not lie inside its block " + hex(start);
    } else if (block) {
        return "large mapping at " + hex(addr) + " resolves to a block";
    }
    return "";
}

// No page of a fresh mapping at `addr` is one the model unmapped and no
// recorded flush has covered since (the model's side of the TLB promise; the
// stamped replay in tlb.hpp is the exact one, this one trusts nothing the
// allocator says about its unmaps).
inline std::string check_not_unflushed(const model& m, unsigned long addr, unsigned count) {
    auto it = m.unflushed().lower_bound(addr);
    if (it == m.unflushed().end() || *it >= addr + count * m.page_size())
        return "";
    return "vm_map_ram handed out " + hex(addr) + " (" + std::to_string(count) +
           " pages) with page " + hex(*it) + " unmapped earlier and not flushed since";
}

// Every page of a live small mapping still resolves to the block that
// served it (addr_to_vb_xa + xa_load). find_block() is xa_load() of the
// page's queue and index, so each page's pair is computed but the lookup
// runs once per distinct pair: the xarray walk was 6% of vmap_threads.
inline std::string check_resolves(vmap::allocator& a, const model& m, const mapping& mp) {
    if (!m.is_small(mp.count))
        return "";
    const vmap::xarray<vmap::vmap_block>* xa = nullptr; // of the last lookup
    std::uint64_t idx = 0;
    vmap::vmap_block* vb = nullptr;
    for (unsigned p = 0; p < mp.count; ++p) {
        unsigned long addr = mp.addr + p * a.page_size();
        if (addr < a.vmalloc_start() || addr >= a.vmalloc_end()) {
            vb = a.find_block(addr); // no queue to ask
            xa = nullptr;
        } else if (&a.addr_to_vb_xa(addr) != xa || a.addr_to_vb_idx(addr) != idx) {
            xa = &a.addr_to_vb_xa(addr);
            idx = a.addr_to_vb_idx(addr);
            vb = a.find_block(addr);
        }
        if (vb != mp.block)
            return "page " + hex(addr) + " of the mapping at " + hex(mp.addr) +
                   " resolves to another block than the one that served it";
    }
    return "";
}

// vread of [addr, addr + len) gives what the model says, read into `into`.
inline std::string check_vread(vmap::allocator& a, const model& m, unsigned long addr,
                               std::size_t len, read_buffer& into) {
    std::span<std::byte> buf = into.get(len, std::byte{0x5a});
    a.vread(addr, buf);
    std::size_t i = m.mismatch(addr, buf);
    if (i == len)
        return "";
    std::byte want[1];
    m.expected(addr + i, want);
    return "vread at " + hex(addr + i) + " read " + std::to_string(static_cast<unsigned>(buf[i])) +
           ", expected " + std::to_string(static_cast<unsigned>(want[0]));
}

// The same into the model's own buffer.
inline std::string check_vread(vmap::allocator& a, const model& m, unsigned long addr,
                               std::size_t len) {
    return check_vread(a, m, addr, len, m.scratch());
}

// The second half of the kernel's rule for errc::no_space, once the lazy
// lifecycle is ported (free_vmap_area_noflush(), __purge_vmap_area_lazy(),
// reclaim_and_purge_vmap_areas()): alloc_vmap_area() purges the lazily freed
// areas, pools decayed in full and not refilled, before it gives up, so none
// may still wait on a lazy list or in a pool.
inline std::string check_no_lazy_area_waiting(vmap::allocator& a) {
    // Atomics only: no lock, so no scheduling point (vmap_threads calls
    // this inside an unobserved_look).
    if (long lazy = a.vmap_lazy_nr(); lazy != 0)
        return "no_space while " + std::to_string(lazy) +
               " lazily freed pages wait on lazy lists (the purge on exhaustion would have "
               "returned them)";
    if (std::uint64_t pooled = a.pooled_areas(); pooled != 0)
        return "no_space while " + std::to_string(pooled) +
               " pooled areas wait in the nodes' pools (the full decay on exhaustion would have "
               "returned them)";
    return "";
}

// errc::no_space is the kernel's answer only after alloc_vmap_area() had
// purge_fragmented_blocks_allcpus() reclaim what it could and still nothing
// fit: no CPU may hold a block the forced purge would have freed (free +
// dirty == VMAP_BBMAP_BITS, dirty != VMAP_BBMAP_BITS), and no lazily freed
// area may be waiting. Judge it right after the failing vm_map_ram(), before
// anything else has run (vmap_threads: inside an unobserved_look, and only
// when no other thread unmapped during the call). Whether a block-sized area
// fits now is the runner's separate question.
inline std::string check_exhausted(vmap::allocator& a) {
    std::string e;
    {
        vmap::rcu::read_guard rcu;
        a.for_each_block([&](vmap::vmap_block* vb) {
            unsigned free = vb->free.load(std::memory_order_relaxed);
            unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
            if (!e.empty() || free + dirty != a.bbmap_bits() || dirty == a.bbmap_bits())
                return;
            e = "no_space while block " + hex(vb->va->va_start) + " of CPU " +
                std::to_string(vb->cpu) + " is fragmented (free " + std::to_string(free) +
                " + dirty " + std::to_string(dirty) +
                " == VMAP_BBMAP_BITS): purge_fragmented_blocks_allcpus() would have freed it";
        });
    }
    if (e.empty())
        e = check_no_lazy_area_waiting(a);
    return e;
}

// allocator::check() as one message.
inline std::string check_audit(vmap::allocator& a) {
    std::vector<std::string> v = a.check();
    if (v.empty())
        return "";
    // The first violation on the headline: reports (and ci/bug-hunt) name it.
    std::string all =
        "allocator::check() found " + std::to_string(v.size()) + " violation(s): " + v.front();
    for (std::size_t i = 1; i < v.size(); ++i)
        all += "\n    " + v[i];
    return all;
}

// addr_to_vb_idx()'s block index of the range's last block, computed here.
inline std::uint64_t last_block_index(vmap::allocator& a) {
    return (a.vmalloc_end() - 1 - (a.vmalloc_start() & ~(a.block_size() - 1))) / a.block_size();
}

// The xarrays are no taller than the configured key needs for the range
// (the v3 va_start key costs 11 levels of nodes where block indices need 4).
inline std::string check_xa_height(vmap::allocator& a) {
    std::uint64_t max_key = 0;
    unsigned long last_block = (a.vmalloc_end() - 1) & ~(a.block_size() - 1);
    switch (a.cfg().key) {
    case vmap::vb_key::va_start:
        max_key = last_block;
        break;
    case vmap::vb_key::dense:
        // (i / nr_cpu_ids) * n_q + rank < (i / nr_cpu_ids + 1) * nr_cpu_ids
        // (n_q <= nr_cpu_ids) for the last block index i. The global scheme
        // keys by block index, which is below that too.
        max_key = last_block_index(a) / a.cpus().nr_cpu_ids() * a.cpus().nr_cpu_ids() +
                  a.cpus().nr_cpu_ids() - 1;
        break;
    case vmap::vb_key::block_index:
        max_key = last_block_index(a);
        break;
    }
    unsigned bound = vmap::xa_height_for(max_key);
    unsigned h = a.stats().xa_max_height;
    if (h > bound)
        return "xarray height " + std::to_string(h) + " exceeds " + std::to_string(bound) +
               ", the minimum for " + vmap::to_string(a.cfg().key) + " keys up to " +
               std::to_string(max_key);
    return "";
}

// With every mapping gone: flush, then what alloc_vmap_area() does on
// exhaustion (every fragmented block, every lazy area, the pools in full); no
// block may be left, nothing lazy or pooled, and the range must be whole
// again (nothing lost).
inline std::string check_drained(vmap::allocator& a) {
    a.vm_unmap_aliases();
    a.reclaim_and_purge_vmap_areas();
    if (std::string e = check_audit(a); !e.empty())
        return e;
    vmap::allocator_stats st = a.stats();
    if (st.blocks_live != 0)
        return std::to_string(st.blocks_live) + " blocks left after unmapping and purging all";
    if (st.lazy_pages != 0 || st.pooled_areas != 0)
        return std::to_string(st.lazy_pages) + " lazy pages and " +
               std::to_string(st.pooled_areas) + " pooled areas left after a full purge";
    if (a.areas().busy_count() != 0 ||
        a.areas().free_bytes() != a.vmalloc_end() - a.vmalloc_start())
        return "the range is not whole again after unmapping everything (VA leaked)";
    return "";
}

} // namespace harness
