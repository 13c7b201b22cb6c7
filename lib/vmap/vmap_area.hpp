// SPDX-License-Identifier: MIT
// vmap/vmap_area.hpp: the vmap_area allocator - virtual ranges of the managed
// area, handed out whole to vmap blocks and to large vm_map_ram() mappings.
//
// The kernel keeps free space in an rb-tree augmented with the largest free
// size below each node. We need the same O(log n) with two alignments only,
// the page (large mappings) and the block (vmap blocks), so we keep three
// ordered indexes of the free ranges instead of an augmented tree:
//   free_        start -> end, for coalescing on free;
//   by_size_     (size, start): best fit for page-aligned requests;
//   block_fit_   starts of the ranges that can hold one aligned block,
//                for lowest-address block placement (as the kernel's).
// Busy areas live in busy_ (start -> area) for lookup by address.
//
// An area leaves both structures between unlink() (or find_unlink()) and
// reclaim(): the kernel's lazy lists and pools hold it then (lazy.hpp,
// vmap_node.hpp), or a caller on its way to put it there. out_ counts those
// bytes; a carved area not yet inserted into busy_ counts too.
// Invariants (audit()): free ranges are disjoint, never adjacent (coalesced)
// and inside [start, end); busy areas are disjoint from each other and from
// free space; free + busy + out bytes == the range size; the two indexes hold
// exactly the ranges they should. The owner checks that the areas out are
// exactly those on its lazy lists and in its pools (audit.hpp).
// One lock covers free space and the busy tree: the kernel's
// free_vmap_area_lock and the nodes' busy.lock, the seed's top contended
// "vmap_area_lock". Under it, every area carved, unlinked and reclaimed is
// stamped in the TLB log (tlb_log.hpp), so the log's order is the lock's.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <vmap/spinlock.hpp>
#include <vmap/tlb_log.hpp>

namespace vmap {

// va->flags (mm/vmalloc.c): the type in the low byte (VMAP_RAM for a
// vm_map_ram() area; a block's area carries VMAP_RAM | VMAP_BLOCK), the
// encoded vmap_node id above it (vmap_node.hpp).
inline constexpr unsigned VMAP_RAM = 0x1;
inline constexpr unsigned VMAP_BLOCK = 0x2;
inline constexpr unsigned VMAP_FLAGS_MASK = 0x3;

struct vmap_area {
    unsigned long va_start = 0;
    unsigned long va_end = 0; // exclusive
    unsigned flags = 0;
    // A large (VMAP_RAM, not VMAP_BLOCK) mapping's page table, one entry a
    // page: made empty (all null) when the area is handed out, filled by
    // vmap_pages_range() once the area is busy (vm_map_ram() maps after
    // allocating), read by vread, which does not wait for the mapper.
    std::unique_ptr<std::atomic<std::byte*>[]> pages;
};

class vmap_area_allocator {
  public:
    // [start, start + size) is managed; `block` is the block size (a power
    // of two), the one alignment besides `page` that alloc() serves. Events
    // go to `tlb`, if given.
    vmap_area_allocator(unsigned long start, unsigned long size, unsigned long page,
                        unsigned long block, tlb_log* tlb = nullptr)
        : start_(start), end_(start + size), page_(page), block_(block), tlb_(tlb) {
        insert_free(start_, end_);
    }

    vmap_area_allocator(const vmap_area_allocator&) = delete;
    vmap_area_allocator& operator=(const vmap_area_allocator&) = delete;

    // __alloc_vmap_area(): carves `size` bytes aligned to `align` (page or
    // block) out of free space, lowest address first for blocks, best fit
    // for pages; the range is handed out (a TLB event). nullptr when nothing
    // fits: the caller purges and retries, or fails cleanly. The area is
    // out until insert_busy() or reclaim().
    std::unique_ptr<vmap_area> carve_area(unsigned long size, unsigned long align, unsigned flags) {
        if (size == 0 || size % page_ != 0 || (align != page_ && align != block_))
            return nullptr;
        std::lock_guard<spinlock> g(lock_);
        unsigned long at;
        if (align == block_) {
            if (size != block_ || block_fit_.empty())
                return nullptr;
            at = round_up(*block_fit_.begin(), block_);
        } else {
            auto it = by_size_.lower_bound({size, 0});
            if (it == by_size_.end())
                return nullptr;
            at = it->second;
        }
        carve(at, at + size);
        auto va = std::make_unique<vmap_area>();
        va->va_start = at;
        va->va_end = at + size;
        va->flags = flags;
        out_ += size;
        if (tlb_)
            tlb_->hand_out(kind_of(flags), at, at + size);
        return va;
    }

    // insert_vmap_area() into the busy tree: findable by address from now on.
    vmap_area* insert_busy(std::unique_ptr<vmap_area> va) {
        std::lock_guard<spinlock> g(lock_);
        vmap_area* raw = va.get();
        auto [it, fresh] = busy_.emplace(raw->va_start, std::move(va));
        VMAP_BUG(!fresh, "insert_busy: an area already starts at " + hex(raw->va_start));
        out_ -= raw->va_end - raw->va_start;
        return raw;
    }

    // carve_area() and insert_busy() in one (tests, and callers with no pools).
    vmap_area* alloc(unsigned long size, unsigned long align, unsigned flags,
                     std::span<std::byte* const> pages = {}) {
        std::unique_ptr<vmap_area> va = carve_area(size, align, flags);
        if (!va)
            return nullptr;
        if (!pages.empty()) {
            va->pages = std::make_unique<std::atomic<std::byte*>[]>(pages.size());
            for (std::size_t i = 0; i < pages.size(); ++i)
                va->pages[i].store(pages[i], std::memory_order_relaxed);
        }
        return insert_busy(std::move(va));
    }

    // unlink_va() from the busy tree: the caller owns the area now (out).
    std::unique_ptr<vmap_area> unlink(vmap_area* va) {
        std::lock_guard<spinlock> g(lock_);
        auto it = busy_.find(va->va_start);
        VMAP_BUG(it == busy_.end() || it->second.get() != va, "unlink of an unknown vmap_area");
        std::unique_ptr<vmap_area> own = std::move(it->second);
        busy_.erase(it);
        out_ += own->va_end - own->va_start;
        return own;
    }

    // free_vmap_area(): unlink and return the range at once, for an area
    // that never had a translation (new_vmap_block()'s error path).
    void free(vmap_area* va) { reclaim(unlink(va)); }

    // find_unlink_vmap_area(): the busy area starting exactly at `addr` with
    // type `flags` and `size` bytes, unlinked. Its translations are gone
    // (nothing finds its pages any more; a TLB unmap event), but its range
    // is not free: the caller frees it lazily. nullptr if there is none; then
    // *wrong_size says whether one was there with another size (and was left
    // alone).
    std::unique_ptr<vmap_area> find_unlink(unsigned long addr, unsigned flags, unsigned long size,
                                           bool* wrong_size) {
        std::lock_guard<spinlock> g(lock_);
        auto it = busy_.find(addr);
        *wrong_size = false;
        if (it == busy_.end() || (it->second->flags & VMAP_FLAGS_MASK) != flags)
            return nullptr;
        if (it->second->va_end - it->second->va_start != size) {
            *wrong_size = true;
            return nullptr;
        }
        return unlink_busy_locked(it);
    }

    // find_unlink_vmap_area() as the kernel has it: the busy area that
    // contains `addr`, whatever its type and size, unlinked (a TLB unmap
    // event), or nullptr.
    std::unique_ptr<vmap_area> find_unlink_containing(unsigned long addr) {
        std::lock_guard<spinlock> g(lock_);
        auto it = busy_.upper_bound(addr);
        if (it == busy_.begin())
            return nullptr;
        --it;
        if (addr >= it->second->va_end)
            return nullptr;
        return unlink_busy_locked(it);
    }

    // reclaim_list_global(): returns areas that are out to the free space,
    // merging with their neighbours; allocatable again (a TLB release
    // event). The caller has flushed every translation they had.
    void reclaim(std::vector<std::unique_ptr<vmap_area>>& list) {
        if (list.empty())
            return;
        std::lock_guard<spinlock> g(lock_);
        for (std::unique_ptr<vmap_area>& va : list)
            reclaim_locked(*va);
        list.clear();
    }
    void reclaim(std::unique_ptr<vmap_area> va) {
        std::lock_guard<spinlock> g(lock_);
        reclaim_locked(*va);
    }

    // find_vmap_area(): calls f(area or nullptr) for the busy area containing
    // `addr`, under the lock, so the area cannot go away meanwhile.
    template <class F>
    decltype(auto) with_area(unsigned long addr, F&& f) {
        std::lock_guard<spinlock> g(lock_);
        return f(find_locked(addr));
    }

    // Whether alloc(size, align) would succeed now (tests judge no_space).
    bool can_fit(unsigned long size, unsigned long align) const {
        std::lock_guard<spinlock> g(lock_);
        if (align == block_)
            return size == block_ && !block_fit_.empty();
        return by_size_.lower_bound({size, 0}) != by_size_.end();
    }

    // find_vmap_area_exceed_addr_lock() without its lock step: the busy area
    // with the lowest end above `addr` (the one containing it, or else the
    // next), or nullptr. The caller holds lock(), which keeps it busy.
    vmap_area* find_exceed_locked(unsigned long addr) const {
        lock_.assert_held("find_exceed_locked");
        auto it = busy_.upper_bound(addr);
        if (it != busy_.begin() && std::prev(it)->second->va_end > addr)
            return std::prev(it)->second.get();
        return it == busy_.end() ? nullptr : it->second.get();
    }

    // Start of the first busy area at or after `addr`, or end() if none.
    unsigned long next_busy(unsigned long addr) {
        std::lock_guard<spinlock> g(lock_);
        auto it = busy_.lower_bound(addr);
        return it == busy_.end() ? end_ : it->first;
    }

    // Bytes of areas out: unlinked or carved, not in busy_ nor free space.
    unsigned long out_bytes() const {
        std::lock_guard<spinlock> g(lock_);
        return out_;
    }
    // Whether [s, e) meets free space or a busy area (audits of areas out).
    bool overlaps_free_or_busy(unsigned long s, unsigned long e) const {
        std::lock_guard<spinlock> g(lock_);
        auto f = free_.upper_bound(s);
        if (f != free_.begin() && std::prev(f)->second > s)
            return true;
        if (f != free_.end() && f->first < e)
            return true;
        auto b = busy_.lower_bound(s);
        if (b != busy_.end() && b->first < e)
            return true;
        return find_locked(s) != nullptr;
    }

    unsigned long start() const { return start_; }
    unsigned long end() const { return end_; }
    std::size_t busy_count() const {
        std::lock_guard<spinlock> g(lock_);
        return busy_.size();
    }
    unsigned long free_bytes() const {
        std::lock_guard<spinlock> g(lock_);
        unsigned long n = 0;
        for (auto& [s, e] : free_)
            n += e - s;
        return n;
    }
    lock_stats stats() const { return lock_.stats(); }
    spinlock& lock() { return lock_; }

    // f(area) for every busy area in address order, under the lock.
    template <class F>
    void for_each_busy(F&& f) const {
        std::lock_guard<spinlock> g(lock_);
        for (auto& [s, va] : busy_)
            f(*va);
    }

    void audit(std::vector<std::string>& out) const {
        std::lock_guard<spinlock> g(lock_);
        unsigned long free_sum = 0, busy_sum = 0, prev_end = 0;
        bool first = true;
        for (auto& [s, e] : free_) {
            if (s >= e || s < start_ || e > end_)
                out.push_back("vmap_area: free range " + hex(s) + "-" + hex(e) + " is bad");
            if (!first && s <= prev_end)
                out.push_back("vmap_area: free ranges overlap or are not coalesced at " + hex(s));
            if (by_size_.count({e - s, s}) != 1)
                out.push_back("vmap_area: size index misses free range " + hex(s));
            if (block_fit_.count(s) != (fits_block(s, e) ? 1u : 0u))
                out.push_back("vmap_area: block index wrong for free range " + hex(s));
            free_sum += e - s;
            prev_end = e;
            first = false;
        }
        if (by_size_.size() != free_.size())
            out.push_back("vmap_area: size index has stale entries");
        unsigned long busy_end = 0;
        for (auto& [s, va] : busy_) {
            if (va->va_start != s || va->va_end <= s || s < start_ || va->va_end > end_)
                out.push_back("vmap_area: busy area " + hex(s) + " is bad");
            if (s < busy_end)
                out.push_back("vmap_area: busy areas overlap at " + hex(s));
            auto f = free_.upper_bound(s);
            if (f != free_.begin() && std::prev(f)->second > s)
                out.push_back("vmap_area: busy area " + hex(s) + " overlaps free space");
            if (f != free_.end() && f->first < va->va_end)
                out.push_back("vmap_area: busy area " + hex(s) + " overlaps free space");
            busy_sum += va->va_end - s;
            busy_end = va->va_end;
        }
        if (free_sum + busy_sum + out_ != end_ - start_)
            out.push_back("vmap_area: free " + hex(free_sum) + " + busy " + hex(busy_sum) +
                          " + out " + hex(out_) + " bytes != range size " + hex(end_ - start_));
    }

    static std::string hex(unsigned long v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%#lx", v);
        return buf;
    }

    static range_kind kind_of(unsigned flags) {
        return flags & VMAP_BLOCK ? range_kind::block : range_kind::large;
    }

  private:
    // Takes a busy area out under lock_ (its translations are gone: a TLB
    // unmap event); it is out until reclaimed.
    template <class It>
    std::unique_ptr<vmap_area> unlink_busy_locked(It it) {
        std::unique_ptr<vmap_area> va = std::move(it->second);
        busy_.erase(it);
        out_ += va->va_end - va->va_start;
        if (tlb_)
            tlb_->unmap(kind_of(va->flags), va->va_start, va->va_end);
        return va;
    }

    void reclaim_locked(const vmap_area& va) {
        out_ -= va.va_end - va.va_start;
        release(va.va_start, va.va_end);
        if (tlb_)
            tlb_->release(kind_of(va.flags), va.va_start, va.va_end);
    }
    static unsigned long round_up(unsigned long v, unsigned long a) {
        return (v + a - 1) & ~(a - 1);
    }
    bool fits_block(unsigned long s, unsigned long e) const {
        unsigned long a = round_up(s, block_);
        return a >= s && a < e && e - a >= block_;
    }

    vmap_area* find_locked(unsigned long addr) const {
        auto it = busy_.upper_bound(addr);
        if (it == busy_.begin())
            return nullptr;
        --it;
        return addr < it->second->va_end ? it->second.get() : nullptr;
    }

    void insert_free(unsigned long s, unsigned long e) {
        free_.emplace(s, e);
        by_size_.emplace(e - s, s);
        if (fits_block(s, e))
            block_fit_.insert(s);
    }
    void erase_free(std::map<unsigned long, unsigned long>::iterator it) {
        by_size_.erase({it->second - it->first, it->first});
        block_fit_.erase(it->first);
        free_.erase(it);
    }

    // Takes [a, b) out of the free range that contains it.
    void carve(unsigned long a, unsigned long b) {
        auto it = std::prev(free_.upper_bound(a));
        unsigned long s = it->first, e = it->second;
        VMAP_BUG(a < s || b > e, "vmap_area: carve outside a free range");
        erase_free(it);
        if (s < a)
            insert_free(s, a);
        if (b < e)
            insert_free(b, e);
    }

    // Returns [s, e) to free space, merging with its neighbours.
    void release(unsigned long s, unsigned long e) {
        auto next = free_.lower_bound(s);
        if (next != free_.end() && next->first == e) {
            e = next->second;
            erase_free(next);
        }
        auto prev = free_.lower_bound(s);
        if (prev != free_.begin()) {
            --prev;
            if (prev->second == s) {
                s = prev->first;
                erase_free(prev);
            }
        }
        insert_free(s, e);
    }

    unsigned long start_, end_, page_, block_;
    tlb_log* tlb_;
    unsigned long out_ = 0; // bytes of areas neither free nor busy
    mutable spinlock lock_{"vmap_area_lock"};
    std::map<unsigned long, unsigned long> free_;
    std::set<std::pair<unsigned long, unsigned long>> by_size_;
    std::set<unsigned long> block_fit_;
    std::map<unsigned long, std::unique_ptr<vmap_area>> busy_;
};

} // namespace vmap
