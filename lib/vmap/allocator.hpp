// SPDX-License-Identifier: MIT
// vmap/allocator.hpp: vm_map_ram()/vm_unmap_ram() over per-CPU hashed
// vmap_block xarrays - the state of mm/vmalloc.c after the seed patch
// "mm: vmalloc: Remove a global vmap_blocks xarray" and its later fixes.
//
// Small requests (1..max_alloc pages) are served from vmap blocks: per-CPU
// free lists of block-sized areas, bump-allocated, freed back only as whole
// blocks. A freed small range finds its block through a hash of the address
// onto the per-CPU queues, addr_to_vb_xa(): queue (addr / VMAP_BLOCK_SIZE) %
// nr_cpu_ids, or the next possible CPU if that one is not possible; the key
// inside that queue's xarray is addr_to_vb_idx(). Large requests get a
// vmap_area of their own.
//
// Keys (config::key). block_index (v4 of the seed, merged): (addr -
// VMALLOC_START rounded down to a block) / VMAP_BLOCK_SIZE. va_start (v3):
// the block's start address, 11 levels deep. dense (ours, not upstream): a
// key that keeps each per-CPU xarray as compact as the global one. With
// block_index keys, queue q of N holds the keys q, q + N, q + 2N, ..., so for
// N >= 64 every block needs a leaf node of its own. The dense key of a block
// with index i and hash value h = (addr / VMAP_BLOCK_SIZE) % nr_cpu_ids is
//     (i / nr_cpu_ids) * n_q + rank_q(h)
// where q is the queue h falls back to, n_q the number of hash values that
// land on q (1 for a possible CPU that no impossible one falls back to; more
// with a sparse mask, e.g. {0, 2, 5}: 3, 4 and 5 all land on 5) and
// rank_q(h) in [0, n_q) the rank of h among them. It never collides within a
// queue: two blocks of q with the same i / nr_cpu_ids lie in one run of
// nr_cpu_ids consecutive block numbers, so their hash values differ and so
// do their ranks; blocks with different i / nr_cpu_ids get keys in disjoint
// ranges [p * n_q, (p + 1) * n_q). Each queue's keys are consecutive, so its
// leaves fill up. Both n_q and the rank are a table built at construction.
// The global scheme has one xarray for all hash values: there dense is the
// block index.
//
// Locking (the kernel's order): purge_lock -> RCU read side -> vb->lock ->
// vbq->lock; xa_lock and vmap_area_lock are leaves.
//
// The TLB promise (tlb_log.hpp): no range is handed out while a stale
// translation of it may survive. A page goes stale when vb_free() clears its
// entry or a large unmap unlinks its area; it is flushed by
// vm_unmap_aliases() (the blocks' dirty ranges), by free_vmap_block() (the
// whole block, before its area is freed) and by the large unmap itself
// (before its range is freed). Every path that returns address space
// flushes first: free_vmap_block() (from vb_free, vm_unmap_aliases' purge,
// purge_fragmented_blocks() and the purge on exhaustion) and the large path
// of vm_unmap_ram(). The destructor returns nothing to anyone.
//
// Misuse has one documented answer each (also in README.md):
//   vm_map_ram, no pages          WARN_ON_ONCE, errc::invalid_count
//   vm_map_ram, a null page       WARN_ON_ONCE, errc::invalid_page
//   vm_map_ram, range exhausted   (after purging every CPU) errc::no_space
//   vm_unmap_ram, address 0, outside the range or not page aligned
//                                 BUG: fatal, or errc::bad_address
//   vm_unmap_ram, count 0         WARN_ON_ONCE, errc::invalid_count
//   small count, no block there   BUG: fatal, or errc::not_mapped
//   small count, not the start of a live mapping (double unmap, interior
//   address)                      BUG: fatal, or errc::not_mapped
//   small count of another order than the mapping's
//                                 BUG: fatal, or errc::wrong_count
//   large count, no large mapping starts there
//                                 WARN_ON_ONCE, errc::not_mapped (kernel)
//   large count, size differs     WARN_ON_ONCE, errc::wrong_count
// "BUG: fatal, or ..." follows config::on_bug. In every failing case nothing
// has changed. Within a block a count is checked by order, as the kernel
// rounds it up (3 and 4 pages are the same request).
#pragma once

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <vmap/check.hpp>
#include <vmap/cpu.hpp>
#include <vmap/geometry.hpp>
#include <vmap/list.hpp>
#include <vmap/rcu.hpp>
#include <vmap/sched_point.hpp>
#include <vmap/spinlock.hpp>
#include <vmap/tlb_log.hpp>
#include <vmap/vmap_area.hpp>
#include <vmap/vmap_block.hpp>
#include <vmap/xarray.hpp>

namespace vmap {

// Where blocks are hashed: the patch, or the single xarray before it.
enum class vb_scheme { per_cpu_hashed, global };
// The xarray key: the block index (v4, merged), va_start (v3 of the seed) or
// a per-queue dense index (ours; see the top of this file).
enum class vb_key { block_index, va_start, dense };

inline const char* to_string(vb_scheme s) {
    return s == vb_scheme::global ? "global" : "per_cpu_hashed";
}
inline const char* to_string(vb_key k) {
    switch (k) {
    case vb_key::block_index:
        return "block_index";
    case vb_key::va_start:
        return "va_start";
    case vb_key::dense:
        return "dense";
    }
    return "?";
}

struct config {
    cpu_mask possible = cpu_mask::first_n(std::max(1u, std::thread::hardware_concurrency()));
    vb_scheme scheme = vb_scheme::per_cpu_hashed;
    vb_key key = vb_key::block_index;
    unsigned page_shift = 12;
    unsigned max_alloc = default_max_alloc; // VMAP_MAX_ALLOC, pages
    unsigned bbmap_bits = 0;                // VMAP_BBMAP_BITS; 0: the kernel's formula
    unsigned long vmalloc_start = default_vmalloc_start;
    unsigned long vmalloc_size = default_vmalloc_size;
    warn_policy on_warn = warn_policy::count;
    bug_policy on_bug = bug_policy::abort;
    diagnostics::handler_fn warn_handler = {};
    bool record_tlb = true; // keep the TLB event log (benchmarks turn it off)
};

enum class errc {
    ok,
    invalid_count, // 0 pages
    invalid_page,  // a null page pointer
    no_space,      // the range is exhausted, even after purging
    no_memory,     // an xarray node could not be allocated
    bad_address,   // 0, outside the range, or not page aligned
    not_mapped,    // no live mapping starts at the address
    wrong_count,   // a live mapping starts there, of another size
};

inline const char* to_string(errc e) {
    switch (e) {
    case errc::ok:
        return "ok";
    case errc::invalid_count:
        return "invalid_count";
    case errc::invalid_page:
        return "invalid_page";
    case errc::no_space:
        return "no_space";
    case errc::no_memory:
        return "no_memory";
    case errc::bad_address:
        return "bad_address";
    case errc::not_mapped:
        return "not_mapped";
    case errc::wrong_count:
        return "wrong_count";
    }
    return "?";
}

struct map_result {
    unsigned long addr = 0;
    errc err = errc::ok;
    explicit operator bool() const { return err == errc::ok; }
};

struct queue_stats {
    unsigned cpu = 0;
    std::size_t blocks = 0; // blocks hashed to this queue
    std::size_t xa_nodes = 0, xa_bytes = 0;
    unsigned xa_height = 0;
    lock_stats xa_lock, vbq_lock;
};

struct allocator_stats {
    std::vector<queue_stats> queues; // one per possible CPU
    // Totals over the xarrays in use (the global one, or all per-CPU ones).
    std::size_t xa_nodes = 0, xa_bytes = 0;
    unsigned xa_max_height = 0;
    lock_stats xa_lock, vbq_lock, vb_lock, vmap_area_lock;
    std::uint64_t blocks_live = 0, blocks_created = 0, blocks_freed = 0, blocks_purged = 0;
    std::uint64_t flushes = 0;
};

class allocator {
  public:
    explicit allocator(config cfg = {});
    ~allocator();
    allocator(const allocator&) = delete;
    allocator& operator=(const allocator&) = delete;

    // --- geometry ---------------------------------------------------------
    const config& cfg() const { return cfg_; }
    const cpu_topology& cpus() const { return topo_; }
    unsigned long page_size() const { return 1UL << cfg_.page_shift; }
    unsigned page_shift() const { return cfg_.page_shift; }
    unsigned bbmap_bits() const { return bits_; }            // VMAP_BBMAP_BITS
    unsigned long block_size() const { return block_size_; } // VMAP_BLOCK_SIZE
    unsigned max_alloc() const { return cfg_.max_alloc; }    // VMAP_MAX_ALLOC
    unsigned purge_threshold() const { return bits_ / 4; }   // VMAP_PURGE_THRESHOLD
    unsigned long vmalloc_start() const { return cfg_.vmalloc_start; }
    unsigned long vmalloc_end() const { return cfg_.vmalloc_start + cfg_.vmalloc_size; }

    // --- the API ------------------------------------------------------------
    // Maps `pages` (each page_size() bytes, owned by the caller, alive until
    // unmapped) at a fresh address, on the current CPU.
    map_result vm_map_ram(std::span<std::byte* const> pages);
    errc vm_unmap_ram(unsigned long addr, unsigned count);
    // Flushes every lazily unmapped block range; purges fragmented blocks.
    void vm_unmap_aliases();
    void purge_fragmented_blocks(unsigned cpu);
    void purge_fragmented_blocks_allcpus();
    // Copies [addr, addr + buf.size()) as mapped now; holes read as zero.
    void vread(unsigned long addr, std::span<std::byte> buf);
    // The byte `addr` maps to, or nullptr (the MMU walk, for tests/benches).
    std::byte* translate(unsigned long addr);

    // --- kernel-named internals, public for tests and audits --------------
    unsigned hash_value(unsigned long addr) const;     // (addr / VMAP_BLOCK_SIZE) % nr_cpu_ids
    unsigned addr_to_vb_cpu(unsigned long addr) const; // the hash: a queue index
    xarray<vmap_block>& addr_to_vb_xa(unsigned long addr);
    std::uint64_t addr_to_vb_idx(unsigned long addr) const;
    unsigned long vmap_block_vaddr(unsigned long va_start, unsigned long pages_off);
    vmap_block_queue& queue(unsigned cpu) { return queues_[cpu]; }
    vmap_area_allocator& areas() { return areas_; }
    // The block mapping `addr`, or nullptr. The result is only safe to use
    // under rcu::read_guard or while the caller keeps a mapping in it.
    vmap_block* find_block(unsigned long addr);
    // f(vmap_block*) for every block in the xarrays, under RCU.
    template <class F>
    void for_each_block(F&& f);

    // --- checks and numbers ------------------------------------------------
    // Full invariant audit of a quiescent allocator (audit.hpp): every
    // violation found, each a readable sentence; empty when all is well.
    std::vector<std::string> check();
    allocator_stats stats() const;
    void reset_lock_stats();
    diagnostics& diag() { return diag_; }
    tlb_log& tlb() { return tlb_; }

  private:
    struct vb_alloc_result {
        unsigned long addr = 0;
        vmap_block* vb = nullptr;
        errc err = errc::ok;
    };

    vb_alloc_result vb_alloc(unsigned long size);
    vb_alloc_result new_vmap_block(unsigned long size, unsigned order, unsigned cpu);
    errc vb_free(unsigned long addr, unsigned long size);
    void free_vmap_block(vmap_block* vb);
    bool purge_fragmented_block(vmap_block* vb, std::vector<vmap_block*>& purge_list, bool force);
    void free_purged_blocks(std::vector<vmap_block*>& purge_list);
    vmap_area* alloc_vmap_area(unsigned long size, unsigned long align, unsigned flags,
                               std::span<std::byte* const> pages = {});
    void free_list_del(vmap_block* vb, vmap_block_queue& vbq);
    std::byte* block_page(vmap_block* vb, unsigned long page_addr);
    template <class F>
    void for_each_xarray(F&& f);

    config cfg_;
    cpu_topology topo_;
    unsigned bits_;
    unsigned block_shift_;
    unsigned long block_size_;
    std::optional<std::uint64_t> hash_mask_; // nr_cpu_ids - 1, if a power of two
    std::vector<unsigned> hash_fallback_;    // hash value -> possible CPU
    // vb_key::dense, per hash value h: n_q and rank_q(h) of its queue q.
    struct dense_slot {
        unsigned stride = 1, rank = 0;
    };
    std::vector<dense_slot> dense_;
    diagnostics diag_;
    tlb_log tlb_;
    vmap_area_allocator areas_;
    per_cpu<vmap_block_queue> queues_;
    xarray<vmap_block> global_xa_{"vmap_blocks.xa_lock"}; // vb_scheme::global only
    // vmap_purge_lock: a mutex in the kernel; a yielding spinlock here, so
    // that every lock is one the deterministic scheduler can see.
    spinlock purge_lock_{"vmap_purge_lock"};
    std::atomic<std::uint64_t> blocks_live_{0}, blocks_created_{0}, blocks_freed_{0},
        blocks_purged_{0};
    std::atomic<std::uint64_t> retired_vb_acq_{0}, retired_vb_con_{0};
};

// ---------------------------------------------------------------------------
// Construction

namespace detail {
inline unsigned checked_bits(const config& c, const cpu_topology& topo) {
    // page_shift first: the default formula shifts by it (>= 64 would be UB).
    if (c.page_shift < 6 || c.page_shift > 16)
        throw std::invalid_argument("vmap: page_shift must be in [6, 16]");
    if (c.max_alloc == 0 || c.max_alloc > 1024 || !std::has_single_bit(c.max_alloc))
        throw std::invalid_argument("vmap: max_alloc must be a power of two in [1, 1024]");
    unsigned bits = c.bbmap_bits ? c.bbmap_bits
                                 : default_bbmap_bits(topo.nr_cpu_ids(), c.page_shift, c.max_alloc);
    if (!std::has_single_bit(bits) || bits < 2 * c.max_alloc || bits > 65536)
        throw std::invalid_argument(
            "vmap: bbmap_bits must be a power of two, >= 2 * max_alloc and <= 65536");
    unsigned long page = 1UL << c.page_shift;
    if (c.vmalloc_start == 0 || c.vmalloc_start % page || c.vmalloc_size % page ||
        c.vmalloc_size == 0 || c.vmalloc_start + c.vmalloc_size < c.vmalloc_start)
        throw std::invalid_argument("vmap: the range must be non-empty, page aligned, not at 0 "
                                    "and must not wrap");
    return bits;
}
} // namespace detail

inline allocator::allocator(config cfg)
    : cfg_(std::move(cfg)), topo_(cfg_.possible), bits_(detail::checked_bits(cfg_, topo_)),
      block_shift_(cfg_.page_shift + static_cast<unsigned>(std::countr_zero(bits_))),
      block_size_(1UL << block_shift_), diag_(cfg_.on_warn, cfg_.on_bug, cfg_.warn_handler),
      tlb_(cfg_.record_tlb),
      areas_(cfg_.vmalloc_start, cfg_.vmalloc_size, 1UL << cfg_.page_shift, block_size_, &tlb_),
      queues_(topo_) {
    // addr_to_vb_xa()'s fallback (a34acf30b19b): a hash value that is not a
    // possible CPU goes to the next possible one. nr_cpu_ids - 1 is always
    // possible, so there always is one.
    if (std::has_single_bit(topo_.nr_cpu_ids()))
        hash_mask_ = topo_.nr_cpu_ids() - 1;
    hash_fallback_.resize(topo_.nr_cpu_ids());
    for (unsigned h = 0; h < topo_.nr_cpu_ids(); ++h)
        hash_fallback_[h] = topo_.possible(h) ? h : topo_.next_possible(h);
    // vb_key::dense: rank each hash value among those landing on its queue
    // (in increasing order), then give every one its queue's count.
    dense_.resize(topo_.nr_cpu_ids());
    std::vector<unsigned> landed(topo_.nr_cpu_ids(), 0);
    for (unsigned h = 0; h < topo_.nr_cpu_ids(); ++h)
        dense_[h].rank = landed[hash_fallback_[h]]++;
    for (unsigned h = 0; h < topo_.nr_cpu_ids(); ++h)
        dense_[h].stride = landed[hash_fallback_[h]];
}

inline allocator::~allocator() {
    // No user may run any more. Take every block out and free it at once.
    std::vector<vmap_block*> blocks;
    for_each_block([&](vmap_block* vb) { blocks.push_back(vb); });
    for (vmap_block* vb : blocks) {
        addr_to_vb_xa(vb->va->va_start).erase(addr_to_vb_idx(vb->va->va_start));
        delete vb; // its vmap_area goes with areas_
    }
    rcu::barrier();
}

// ---------------------------------------------------------------------------
// The hash and the key

inline unsigned allocator::hash_value(unsigned long addr) const {
    std::uint64_t block = addr >> block_shift_;
    // The same value as the modulo; a mask saves a 64-bit division on every
    // vb_free when nr_cpu_ids is a power of two (most machines, every bench).
    if (hash_mask_)
        return static_cast<unsigned>(block & *hash_mask_);
    return static_cast<unsigned>(block % topo_.nr_cpu_ids());
}

inline unsigned allocator::addr_to_vb_cpu(unsigned long addr) const {
#if defined(VMAP_BUG_VARIANT_SPARSE_CPU_HASH)
    // BUG VARIANT sparse_cpu_hash (undoes a34acf30b19b): hash modulo the
    // number of possible CPUs and trust the result to be a possible CPU.
    return static_cast<unsigned>((addr >> block_shift_) % topo_.num_possible());
#else
    return hash_fallback_[hash_value(addr)];
#endif
}

inline xarray<vmap_block>& allocator::addr_to_vb_xa(unsigned long addr) {
    if (cfg_.scheme == vb_scheme::global)
        return global_xa_;
    return queues_[addr_to_vb_cpu(addr)].vmap_blocks;
}

inline std::uint64_t allocator::addr_to_vb_idx(unsigned long addr) const {
#if defined(VMAP_BUG_VARIANT_VA_START_KEY)
    // BUG VARIANT va_start_key (v3 of the seed, fixed in v4): key by the
    // block's start address; the xarray needs 11 levels instead of 4.
    return addr & ~(block_size_ - 1);
#else
    if (cfg_.key == vb_key::va_start)
        return addr & ~(block_size_ - 1); // v3: addr_to_vb_va_start()
    std::uint64_t idx = (addr - (cfg_.vmalloc_start & ~(block_size_ - 1))) >> block_shift_;
    if (cfg_.key == vb_key::dense && cfg_.scheme == vb_scheme::per_cpu_hashed) {
        // (i / nr_cpu_ids) * n_q + rank_q(h): unique within queue q.
        const dense_slot& d = dense_[hash_value(addr)];
        return idx / topo_.nr_cpu_ids() * d.stride + d.rank;
    }
    return idx;
#endif
}

inline unsigned long allocator::vmap_block_vaddr(unsigned long va_start, unsigned long pages_off) {
    unsigned long addr = va_start + (pages_off << cfg_.page_shift);
    // v3 of the seed made the kernel's BUG_ON a WARN_ON_ONCE.
    VMAP_WARN_ON_ONCE(diag_, (addr & ~(block_size_ - 1)) != va_start,
                      "vmap_block_vaddr: page " + std::to_string(pages_off) +
                          " is outside the block at " + vmap_area_allocator::hex(va_start));
    return addr;
}

inline vmap_block* allocator::find_block(unsigned long addr) {
    if (addr < vmalloc_start() || addr >= vmalloc_end())
        return nullptr;
    return addr_to_vb_xa(addr).load(addr_to_vb_idx(addr));
}

template <class F>
void allocator::for_each_xarray(F&& f) {
    if (cfg_.scheme == vb_scheme::global) {
        f(global_xa_, UINT_MAX);
        return;
    }
    for (unsigned cpu : topo_.possible_cpus())
        f(queues_[cpu].vmap_blocks, cpu);
}

template <class F>
void allocator::for_each_block(F&& f) {
    for_each_xarray([&](xarray<vmap_block>& xa, unsigned) {
        xa.for_each([&](std::uint64_t, vmap_block* vb) { f(vb); });
    });
}

// ---------------------------------------------------------------------------
// Blocks: allocation

inline vmap_area* allocator::alloc_vmap_area(unsigned long size, unsigned long align,
                                             unsigned flags, std::span<std::byte* const> pages) {
    vmap_area* va = areas_.alloc(size, align, flags, pages);
    if (!va) {
        // The range is exhausted: reclaim what fragmented blocks hold on
        // every CPU and try once more, as alloc_vmap_area() does. (The
        // harness's check_exhausted() judges every no_space by this rule.)
#if defined(VMAP_BUG_VARIANT_NO_PURGE_ON_EXHAUSTION)
        // BUG VARIANT no_purge_on_exhaustion (this port, to prove the
        // no_space check): only the current CPU's fragmented blocks are
        // purged; other CPUs keep theirs and the request fails.
        purge_fragmented_blocks(current_cpu(topo_));
#else
        purge_fragmented_blocks_allcpus();
#endif
        va = areas_.alloc(size, align, flags, pages);
    }
    return va;
}

// The only way a block leaves a free list: under the lock of queue vb->cpu
// (8c61291fd850), with the list checked around the node.
inline void allocator::free_list_del(vmap_block* vb, vmap_block_queue& vbq) {
    vbq.lock.assert_held("free list change");
    VMAP_BUG(&vbq != &queues_[vb->cpu],
             "block " + vmap_area_allocator::hex(vb->va->va_start) +
                 " leaves a free list under the lock of another queue than its own (vb->cpu " +
                 std::to_string(vb->cpu) + ")");
    list_del_rcu(vb->free_list);
}

inline allocator::vb_alloc_result allocator::new_vmap_block(unsigned long size, unsigned order,
                                                            unsigned cpu) {
    auto* vb = new vmap_block(bits_);
    vmap_area* va = alloc_vmap_area(block_size_, block_size_, VMAP_BLOCK);
    if (!va) {
        delete vb;
        return {0, nullptr, errc::no_space};
    }
    unsigned need = 1u << order;
    unsigned long vaddr = vmap_block_vaddr(va->va_start, 0);
    vb->va = va;
    vb->free.store(bits_ - need, std::memory_order_relaxed);
    vb->dirty.store(0, std::memory_order_relaxed);
    vb->dirty_min = bits_;
    vb->dirty_max = 0;
    vb->used_map.set(0, need);
    vb->alloc_order[0] = static_cast<unsigned char>(order + 1);
    tlb_.hand_out(range_kind::small, vaddr, vaddr + size);
#if !defined(VMAP_BUG_VARIANT_CPU_AFTER_PUBLISH)
    vb->cpu = cpu; // before the block is visible to xarray walkers (3e3de7947c75)
#endif
    xarray<vmap_block>& xa = addr_to_vb_xa(va->va_start);
    VMAP_SCHED_POINT(publish, vb);
    xa_insert_result r = xa.insert(addr_to_vb_idx(va->va_start), vb);
    VMAP_BUG(r == xa_insert_result::busy, "new_vmap_block: xarray slot for " +
                                              vmap_area_allocator::hex(va->va_start) +
                                              " is already taken");
    if (r != xa_insert_result::ok) {
        areas_.free(va);
        delete vb;
        return {0, nullptr, errc::no_memory};
    }
#if defined(VMAP_BUG_VARIANT_CPU_AFTER_PUBLISH)
    // BUG VARIANT cpu_after_publish (undoes 3e3de7947c75): vb->cpu is
    // written after the block is already in the xarray.
    VMAP_SCHED_POINT(publish, vb);
    vb->cpu = cpu;
#endif
    vmap_block_queue& vbq = queues_[vb->cpu];
    {
        std::lock_guard<spinlock> g(vbq.lock);
        list_add_tail_rcu(vb->free_list, vbq.free);
    }
    blocks_live_.fetch_add(1, std::memory_order_relaxed);
    blocks_created_.fetch_add(1, std::memory_order_relaxed);
    return {vaddr, vb, errc::ok};
}

inline allocator::vb_alloc_result allocator::vb_alloc(unsigned long size) {
    if (VMAP_WARN_ON(diag_, size > (static_cast<unsigned long>(cfg_.max_alloc) << cfg_.page_shift),
                     "vb_alloc of " + std::to_string(size) + " bytes") ||
        VMAP_WARN_ON_ONCE(diag_, size == 0, "vb_alloc of 0 bytes"))
        return {0, nullptr, errc::invalid_count};
    unsigned order = get_order(size, cfg_.page_shift);
    unsigned need = 1u << order;
    unsigned cpu = current_cpu(topo_);
    vmap_block_queue& vbq = queues_[cpu];
    {
        rcu::read_guard rcu;
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst)) {
            vmap_block* vb = vmap_block::from_list(n);
            VMAP_SCHED_POINT(precheck, vb);
#if defined(VMAP_BUG_VARIANT_RACY_FREE_READ)
            // BUG VARIANT racy_free_read (undoes 43d7650234c6): a plain read
            // of a field other CPUs write under vb->lock.
            if (*reinterpret_cast<unsigned*>(&vb->free) < need)
                continue;
#else
            if (vb->free.load(std::memory_order_relaxed) < need)
                continue;
#endif
            std::lock_guard<spinlock> g(vb->lock);
            unsigned free = vb->free.load(std::memory_order_relaxed);
            if (free < need)
                continue;
            unsigned pages_off = bits_ - free;
            unsigned long vaddr = vmap_block_vaddr(vb->va->va_start, pages_off);
            vb->used_map.set(pages_off, need);
            vb->alloc_order[pages_off] = static_cast<unsigned char>(order + 1);
            vb->free.store(free - need, std::memory_order_relaxed);
            tlb_.hand_out(range_kind::small, vaddr, vaddr + size);
            if (free == need) {
                std::lock_guard<spinlock> q(vbq.lock);
                free_list_del(vb, vbq);
            }
            return {vaddr, vb, errc::ok};
        }
    }
    return new_vmap_block(size, order, cpu);
}

// ---------------------------------------------------------------------------
// Blocks: freeing and purging

inline void allocator::free_vmap_block(vmap_block* vb) {
    unsigned long va_start = vb->va->va_start;
    vmap_block* tmp = addr_to_vb_xa(va_start).erase(addr_to_vb_idx(va_start));
    VMAP_BUG(tmp != vb, "free_vmap_block: xa_erase at " + vmap_area_allocator::hex(va_start) +
                            " did not return this block");
    // Every page of the block was unmapped by vb_free() (free + dirty ==
    // BITS), but some may be stale still. The kernel frees the area lazily
    // and flushes before it can be reused; we free it now, so we flush
    // first: the range must not become allocatable while a page is stale.
    tlb_.flush(va_start, va_start + block_size_, flush_reason::free_block);
    lock_stats s = vb->lock.stats();
    retired_vb_acq_.fetch_add(s.acquisitions, std::memory_order_relaxed);
    retired_vb_con_.fetch_add(s.contentions, std::memory_order_relaxed);
    areas_.free(vb->va); // vb->va dangles from here on, as in the kernel
    blocks_live_.fetch_sub(1, std::memory_order_relaxed);
    blocks_freed_.fetch_add(1, std::memory_order_relaxed);
    rcu::call(&vb->rcu_head, [](rcu::head* h) { rcu::free_poisoned(vmap_block::from_rcu(h)); });
}

inline errc allocator::vb_free(unsigned long addr, unsigned long size) {
    unsigned order = get_order(size, cfg_.page_shift);
    unsigned n = 1u << order;
    unsigned offset = static_cast<unsigned>((addr & (block_size_ - 1)) >> cfg_.page_shift);
    rcu::read_guard rcu; // our addition: keeps a double unmap from reading a freed block
    vmap_block* vb = addr_to_vb_xa(addr).load(addr_to_vb_idx(addr));
    if (VMAP_BUG_ON(diag_, !vb,
                    "vm_unmap_ram: no vmap_block maps " + vmap_area_allocator::hex(addr)))
        return errc::not_mapped;
    std::unique_lock<spinlock> g(vb->lock);
    unsigned rec = vb->alloc_order[offset];
    if (VMAP_BUG_ON(diag_, rec == 0,
                    "vm_unmap_ram: " + vmap_area_allocator::hex(addr) +
                        " is not the start of a live mapping (double unmap?)"))
        return errc::not_mapped;
    if (VMAP_BUG_ON(diag_, rec != order + 1,
                    "vm_unmap_ram: " + vmap_area_allocator::hex(addr) + " maps " +
                        std::to_string(1u << (rec - 1)) + " pages, not " + std::to_string(n)))
        return errc::wrong_count;
    vb->used_map.clear(offset, n);
    vb->alloc_order[offset] = 0;
    // vunmap_range_noflush(): the kernel does this between two vb->lock
    // sections; our page table is this array, so one section does both.
    for (unsigned i = 0; i < n; ++i)
        vb->pages[offset + i].store(nullptr, std::memory_order_relaxed);
    tlb_.unmap(range_kind::small, addr, addr + size); // stale until flushed
    vb->dirty_min = std::min(vb->dirty_min, offset);
    vb->dirty_max = std::max(vb->dirty_max, offset + n);
    unsigned dirty = vb->dirty.load(std::memory_order_relaxed) + n;
    vb->dirty.store(dirty, std::memory_order_relaxed);
    if (dirty == bits_) {
        VMAP_BUG(vb->free.load(std::memory_order_relaxed) != 0,
                 "vb_free: block fully dirty with free pages left");
        g.unlock();
        free_vmap_block(vb);
    }
    return errc::ok;
}

// Caller holds vb->lock.
inline bool allocator::purge_fragmented_block(vmap_block* vb, std::vector<vmap_block*>& purge_list,
                                              bool force) {
    vb->lock.assert_held("purge_fragmented_block");
    // Read first, as the kernel does (it computes vbq on its first line): a
    // walker reads vb->cpu of every block it visits (3e3de7947c75).
    const unsigned cpu = vb->cpu;
    unsigned free = vb->free.load(std::memory_order_relaxed);
    unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
    if (free + dirty != bits_ || dirty == bits_)
        return false;
#if !defined(VMAP_BUG_VARIANT_EAGER_PURGE)
    // Don't purge usable blocks unless asked to (77e50af07f14).
    if (!(force || free < purge_threshold()))
        return false;
#else
    // BUG VARIANT eager_purge (undoes 77e50af07f14): every fragmented block
    // is purged, however many free pages it still has.
    (void)force;
#endif
    vb->free.store(0, std::memory_order_relaxed);      // no further allocations
    vb->dirty.store(bits_, std::memory_order_relaxed); // not purged again
    vb->dirty_min = 0;
    vb->dirty_max = bits_;
#if defined(VMAP_BUG_VARIANT_WRONG_VBQ_LOCK)
    // BUG VARIANT wrong_vbq_lock (undoes 8c61291fd850): the queue chosen by
    // the address hash, not the one whose free list holds the block.
    vmap_block_queue& vbq = queues_[addr_to_vb_cpu(vb->va->va_start)];
    (void)cpu;
#else
    vmap_block_queue& vbq = queues_[cpu];
#endif
    {
        std::lock_guard<spinlock> q(vbq.lock);
        free_list_del(vb, vbq);
    }
    purge_list.push_back(vb);
    blocks_purged_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

inline void allocator::free_purged_blocks(std::vector<vmap_block*>& purge_list) {
    for (vmap_block* vb : purge_list)
        free_vmap_block(vb);
    purge_list.clear();
}

inline void allocator::purge_fragmented_blocks(unsigned cpu) {
    std::vector<vmap_block*> purge;
    vmap_block_queue& vbq = queues_[cpu];
    {
        rcu::read_guard rcu;
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst)) {
            vmap_block* vb = vmap_block::from_list(n);
            VMAP_SCHED_POINT(precheck, vb);
            unsigned free = vb->free.load(std::memory_order_relaxed);
            unsigned dirty = vb->dirty.load(std::memory_order_relaxed);
            if (free + dirty != bits_ || dirty == bits_)
                continue;
            std::lock_guard<spinlock> g(vb->lock);
            purge_fragmented_block(vb, purge, true);
        }
    }
    free_purged_blocks(purge);
}

inline void allocator::purge_fragmented_blocks_allcpus() {
    for (unsigned cpu : topo_.possible_cpus())
        purge_fragmented_blocks(cpu);
}

inline void allocator::vm_unmap_aliases() {
    std::lock_guard<spinlock> pl(purge_lock_);
    std::vector<vmap_block*> purge;
    unsigned long start = ULONG_MAX, end = 0;
    bool flush = false;
    auto visit = [&](vmap_block* vb) {
        std::lock_guard<spinlock> g(vb->lock);
#if defined(VMAP_BUG_VARIANT_VA_AFTER_FREE)
        // BUG VARIANT va_after_free (undoes ad216c0316ad): reads vb->va of a
        // block whose area may already be freed (dirty == BITS).
        unsigned long va_start = vb->va->va_start;
#endif
        // Purge a fragmented block if worth it; else collect its dirty range.
        if (!purge_fragmented_block(vb, purge, false) && vb->dirty_max &&
            vb->dirty.load(std::memory_order_relaxed) != bits_) {
#if !defined(VMAP_BUG_VARIANT_VA_AFTER_FREE)
            unsigned long va_start = vb->va->va_start;
#endif
            unsigned long s =
                va_start + (static_cast<unsigned long>(vb->dirty_min) << cfg_.page_shift);
            unsigned long e =
                va_start + (static_cast<unsigned long>(vb->dirty_max) << cfg_.page_shift);
            start = std::min(s, start);
            end = std::max(e, end);
#if !defined(VMAP_BUG_VARIANT_REFLUSH_DIRTY)
            // Flushed now: not again (a09fad96ffb1).
            vb->dirty_min = bits_;
            vb->dirty_max = 0;
#endif
            flush = true;
        }
    };
#if defined(VMAP_BUG_VARIANT_STALE_FULL_BLOCKS)
    // BUG VARIANT stale_full_blocks (undoes fc1e0d980037): walk the free
    // lists, which miss every full block (free == 0) and its dirty pages.
    for (unsigned cpu : topo_.possible_cpus()) {
        rcu::read_guard rcu;
        vmap_block_queue& vbq = queues_[cpu];
        for (rcu_list_node* n = vbq.free.next.load(std::memory_order_seq_cst); n != &vbq.free;
             n = n->next.load(std::memory_order_seq_cst))
            visit(vmap_block::from_list(n));
    }
#else
    // Walk the xarrays (every block), not the free lists (fc1e0d980037).
    for_each_xarray([&](xarray<vmap_block>& xa, unsigned) {
        rcu::read_guard rcu;
        xa.for_each([&](std::uint64_t, vmap_block* vb) { visit(vb); });
    });
#endif
    free_purged_blocks(purge);
    if (flush)
        tlb_.flush(start, end, flush_reason::unmap_aliases);
}

// ---------------------------------------------------------------------------
// vm_map_ram() / vm_unmap_ram()

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
    const unsigned long start = va->va_start, end = va->va_end;
#if defined(VMAP_BUG_VARIANT_RELEASE_BEFORE_FLUSH)
    // BUG VARIANT release_before_flush (this port's own order before the TLB
    // invariant was checked): the range is allocatable again before the
    // flush, so another CPU may map it while stale translations survive.
    areas_.free_unlinked(std::move(va));
    tlb_.flush(start, end, flush_reason::large_unmap);
#else
    // Flush before the range can be handed out again (the kernel's order:
    // free_unmap_vmap_area() puts it on the lazy list, which is flushed
    // before its areas return to the free space).
    tlb_.flush(start, end, flush_reason::large_unmap);
    areas_.free_unlinked(std::move(va));
#endif
    return errc::ok;
}

// ---------------------------------------------------------------------------
// vread() and translate()

// The page that block `vb` maps at the page-aligned `page_addr`, or nullptr.
// The caller holds vb->lock, so a concurrent unmap cannot free the page.
inline std::byte* allocator::block_page(vmap_block* vb, unsigned long page_addr) {
    unsigned off = static_cast<unsigned>((page_addr & (block_size_ - 1)) >> cfg_.page_shift);
    vb->lock.assert_held("block_page");
    return vb->used_map.test(off) ? vb->pages[off].load(std::memory_order_acquire) : nullptr;
}

inline void allocator::vread(unsigned long addr, std::span<std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        unsigned long a = addr + done;
        unsigned long page_addr = a & ~(page_size() - 1);
        unsigned long in_page = a - page_addr;
        std::size_t n = std::min<std::size_t>(page_size() - in_page, buf.size() - done);
        std::byte* out = buf.data() + done;
        bool copied = false;
        if (a >= addr && page_addr >= vmalloc_start() && page_addr < vmalloc_end()) {
            rcu::read_guard rcu;
            vmap_block* vb = addr_to_vb_xa(page_addr).load(addr_to_vb_idx(page_addr));
            if (vb) {
#if defined(VMAP_BUG_VARIANT_VREAD_UNLOCKED_COPY)
                // BUG VARIANT vread_unlocked_copy (this port, to prove the
                // cross-thread reader): the page is looked up under vb->lock
                // but copied after it is dropped, when its owner may have
                // unmapped and freed it.
                std::byte* p = nullptr;
                {
                    std::lock_guard<spinlock> g(vb->lock);
                    p = block_page(vb, page_addr);
                }
                if (p) {
                    std::memcpy(out, p + in_page, n);
                    copied = true;
                }
#else
                // vmap_ram_vread_iter(): copy what is mapped, under vb->lock,
                // which keeps vb_free() from unmapping it meanwhile.
                std::lock_guard<spinlock> g(vb->lock);
                if (std::byte* p = block_page(vb, page_addr)) {
                    std::memcpy(out, p + in_page, n);
                    copied = true;
                }
#endif
            } else {
                copied = areas_.with_area(page_addr, [&](vmap_area* va) {
                    if (!va || va->flags != VMAP_RAM)
                        return false;
                    std::byte* p = va->pages[(page_addr - va->va_start) >> cfg_.page_shift];
                    std::memcpy(out, p + in_page, n);
                    return true;
                });
            }
        }
        if (!copied)
            std::memset(out, 0, n);
        done += n;
    }
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
        if (!va || va->flags != VMAP_RAM)
            return nullptr;
        return va->pages[(page_addr - va->va_start) >> cfg_.page_shift] + (addr - page_addr);
    });
}

// ---------------------------------------------------------------------------
// Statistics

inline allocator_stats allocator::stats() const {
    auto* self = const_cast<allocator*>(this); // the walks take locks, change nothing
    allocator_stats st;
    for (unsigned cpu : topo_.possible_cpus()) {
        vmap_block_queue& q = self->queues_[cpu];
        queue_stats qs;
        qs.cpu = cpu;
        qs.vbq_lock = q.lock.stats();
        if (cfg_.scheme == vb_scheme::per_cpu_hashed) {
            qs.xa_nodes = q.vmap_blocks.nodes();
            qs.xa_bytes = q.vmap_blocks.bytes();
            qs.xa_height = q.vmap_blocks.height();
            qs.xa_lock = q.vmap_blocks.stats();
            q.vmap_blocks.for_each([&](std::uint64_t, vmap_block*) { ++qs.blocks; });
        }
        st.vbq_lock += qs.vbq_lock;
        st.queues.push_back(qs);
    }
    self->for_each_xarray([&](xarray<vmap_block>& xa, unsigned) {
        st.xa_nodes += xa.nodes();
        st.xa_bytes += xa.bytes();
        st.xa_max_height = std::max(st.xa_max_height, xa.height());
        st.xa_lock += xa.stats();
    });
    st.vb_lock = {retired_vb_acq_.load(std::memory_order_relaxed),
                  retired_vb_con_.load(std::memory_order_relaxed)};
    self->for_each_block([&](vmap_block* vb) { st.vb_lock += vb->lock.stats(); });
    st.vmap_area_lock = areas_.stats();
    st.blocks_live = blocks_live_.load(std::memory_order_relaxed);
    st.blocks_created = blocks_created_.load(std::memory_order_relaxed);
    st.blocks_freed = blocks_freed_.load(std::memory_order_relaxed);
    st.blocks_purged = blocks_purged_.load(std::memory_order_relaxed);
    st.flushes = tlb_.flushes();
    return st;
}

inline void allocator::reset_lock_stats() {
    for (unsigned cpu : topo_.possible_cpus()) {
        queues_[cpu].lock.reset_stats();
        queues_[cpu].vmap_blocks.lock().reset_stats();
    }
    global_xa_.lock().reset_stats();
    areas_.lock().reset_stats();
    for_each_block([&](vmap_block* vb) { vb->lock.reset_stats(); });
    retired_vb_acq_.store(0, std::memory_order_relaxed);
    retired_vb_con_.store(0, std::memory_order_relaxed);
}

} // namespace vmap

#include <vmap/audit.hpp> // allocator::check()
