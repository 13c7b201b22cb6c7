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
// Locking (the kernel's order): vmap_purge_lock -> vmap_area_lock ->
// RCU read side -> vb->lock -> vbq->lock. vmap_area_lock (the kernel's
// free_vmap_area_lock and vn->busy.lock) is held around vb->lock only by
// vread_iter(), as the kernel's busy.lock is, so nothing may take it while
// holding vb->lock or vbq->lock; everywhere else it is a leaf, as are
// xa_lock, vn->lazy.lock and vn->pool_lock.
//
// The address-space lifecycle (kva.hpp, lazy.hpp, vmap_node.hpp) is the
// kernel's: a freed area (a block's, or a large mapping's) is not returned at
// once but put on its node's lazy list by free_vmap_area_noflush(); a purge
// (__purge_vmap_area_lazy(): from vm_unmap_aliases(), the drain work once
// vmap_lazy_nr passes lazy_max_pages(), or the purge on exhaustion) flushes
// the TLB over every lazy area at once, and only then returns them to the
// free space or to their node's pools. The drain work is not a thread: it
// is scheduled by a flag and run by whoever calls run_drain_work().
//
// The TLB promise (tlb_log.hpp): no range is handed out while a stale
// translation of it may survive. A page goes stale when vb_free() clears its
// entry or a large unmap unlinks its area; it is flushed by
// vm_unmap_aliases() (the blocks' dirty ranges) and by every lazy purge
// (the lazy areas' ranges), and nothing returns address space but a lazy
// purge, after its flush. The destructor returns nothing to anyone.
//
// Misuse has one documented answer each (also in README.md). "strict" marks
// a check the kernel does not make (config::strict; KERNEL.md): with strict
// off the call is the caller's bug, and the answer is the one after "off".
//   vm_map_ram, no pages          WARN_ON_ONCE, errc::invalid_count (kernel)
//   vm_map_ram, a null page       strict: WARN_ON_ONCE, errc::invalid_page;
//                                 off: fatal BUG
//   vm_map_ram, range exhausted   (after purging every CPU) errc::no_space
//   vm_map_ram, an allocation fails (config::inject_fault)
//                                 errc::no_memory, all of it given back
//   vm_unmap_ram, address 0, outside the range or not page aligned
//                                 BUG: fatal, or errc::bad_address (kernel;
//                                 strict also refuses VMALLOC_END itself)
//   vm_unmap_ram, count 0         strict: WARN_ON_ONCE, errc::invalid_count;
//                                 off: fatal BUG
//   small count, no block there   strict: BUG: fatal, or errc::not_mapped;
//                                 off: fatal BUG
//   small count, not the start of a live mapping (double unmap, interior
//   address)                      strict: BUG: fatal, or errc::not_mapped;
//                                 off: the kernel's bitmap and dirty updates
//   small count of another order than the mapping's
//                                 strict: BUG: fatal, or errc::wrong_count;
//                                 off: as above
//   large count, no area contains the address
//                                 WARN_ON_ONCE, errc::not_mapped (kernel)
//   large count, no large mapping starts there, or its size differs
//                                 strict: WARN_ON_ONCE, errc::not_mapped or
//                                 errc::wrong_count; off: the kernel unlinks
//                                 whatever area contains the address
// "BUG: fatal, or ..." follows config::on_bug. In every failing case nothing
// has changed. Within a block a count is checked by order, as the kernel
// rounds it up (3 and 4 pages are the same request).
#pragma once

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <functional>
#include <iterator>
#include <list>
#include <memory>
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
#include <vmap/vmap_node.hpp>
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

// Where config::inject_fault may make an allocation fail (the kernel's
// -ENOMEM): vmap_pages_range()'s page-table allocation in vm_map_ram(), and
// new_vmap_block()'s kmalloc_node() and xa_insert().
enum class fault_site { vmap_pages_range, vb_kmalloc, vb_xa_insert };

inline const char* to_string(fault_site f) {
    switch (f) {
    case fault_site::vmap_pages_range:
        return "vmap_pages_range";
    case fault_site::vb_kmalloc:
        return "vb_kmalloc";
    case fault_site::vb_xa_insert:
        return "vb_xa_insert";
    }
    return "?";
}

struct config {
    cpu_mask possible = cpu_mask::this_machine();
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
    // nr_vmap_nodes; 0: the kernel's clamp(num_possible_cpus(), 1, 128). With
    // one node the pools are unused, as in the kernel.
    unsigned vmap_nodes = 1;
    // lazy_max_pages(); 0: the kernel's fls(num_online_cpus()) * (32 MiB /
    // PAGE_SIZE). Tests and fuzzing set it low to make the drain work due
    // within their small ranges.
    unsigned long lazy_max_pages = 0;
    // NR_CPUS, the build-time maximum the VMAP_BBMAP_BITS formula divides
    // by (0: nr_cpu_ids of `possible`, this port's old geometry). 8192 as
    // Debian's and Ubuntu's x86_64 kernels configure it (CONFIG_NR_CPUS):
    // 256-page blocks at 4 KiB pages, whatever the possible mask.
    unsigned nr_cpus = 8192;
    // The strict layer: checks the kernel does not make (KERNEL.md lists
    // them). On, misuse of the API gets the documented errors below. Off,
    // the allocator is the kernel's: a caller bug it does not check is the
    // caller's, and where the kernel would oops or corrupt memory the port
    // stops with a fatal BUG instead of running on undefined behaviour.
    bool strict = true;
    // Fault injection: called at each fault_site; true makes that
    // allocation fail as the kernel's would (empty: never).
    std::function<bool(fault_site)> inject_fault = {};
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
    std::uint64_t lazy_purges = 0, drain_runs = 0; // purges that took areas; drain work run
    long lazy_pages = 0;                           // vmap_lazy_nr now
    std::uint64_t pooled_areas = 0;                // areas in all nodes' pools now
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
    // Flushes every lazily unmapped block range and every lazy area, purges
    // fragmented blocks: afterwards no page unmapped before has an alias.
    void vm_unmap_aliases();
    void purge_fragmented_blocks(unsigned cpu);
    void purge_fragmented_blocks_allcpus();
    // drain_vmap_area_work, if free_vmap_area_noflush() scheduled it (the
    // work item's pending bit); whether it ran.
    bool run_drain_work();
    bool drain_work_pending() const { return drain_pending_.load(std::memory_order_relaxed); }
    // What alloc_vmap_area() does on exhaustion: purge every CPU's fragmented
    // blocks, then every lazy area, pools decayed in full.
    void reclaim_and_purge_vmap_areas();
    // The "vmap-node" shrinker: the areas the pools hold; free them all.
    unsigned long vmap_node_shrink_count();
    void vmap_node_shrink_scan();
    // vread_iter(): copies [addr, addr + buf.size()) as mapped now, holes
    // read as zero; returns the bytes read (vread.hpp: the kernel's
    // arithmetic, and the one way it misreads).
    std::size_t vread(unsigned long addr, std::span<std::byte> buf);
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
    unsigned nr_vmap_nodes() const { return nr_nodes_; }
    vmap_node& node(unsigned id) { return nodes_[id]; }
    unsigned addr_to_node_id(unsigned long addr) const;
    unsigned long lazy_max_pages() const;
    long vmap_lazy_nr() const { return vmap_lazy_nr_.load(std::memory_order_relaxed); }
    // Areas in all nodes' pools now (their true count; no lock taken).
    std::uint64_t pooled_areas() const;
    // Whether an area on some node's lazy list contains `addr`.
    bool lazy_area_covers(unsigned long addr);
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
    vb_alloc_result new_vmap_block(unsigned long size, unsigned order);
    bool vmap_pages_range(unsigned long addr, std::span<std::byte* const> pages, vmap_block* vb,
                          vmap_area* va);
    bool fault(fault_site f) const { return cfg_.inject_fault && cfg_.inject_fault(f); }
    errc vb_free(unsigned long addr, unsigned long size);
    void free_vmap_block(vmap_block* vb);
    bool purge_fragmented_block(vmap_block* vb, std::vector<vmap_block*>& purge_list, bool force);
    void free_purged_blocks(std::vector<vmap_block*>& purge_list);
    // kva.hpp
    vmap_area* alloc_vmap_area(unsigned long size, unsigned long align, unsigned flags);
    std::unique_ptr<vmap_area> node_alloc(unsigned long size, unsigned long align, unsigned flags,
                                          unsigned* vn_id);
    std::unique_ptr<vmap_area> node_pool_del_va(vmap_node& vn, unsigned long size,
                                                unsigned long align, unsigned flags);
    bool node_pool_add_va(vmap_node& vn, std::unique_ptr<vmap_area>& va);
    vmap_pool* size_to_va_pool(vmap_node& vn, unsigned long size);
    void decay_va_pool_node(vmap_node& vn, bool full_decay);
    // lazy.hpp
    void free_vmap_area_noflush(std::unique_ptr<vmap_area> va);
    void free_unmap_vmap_area(std::unique_ptr<vmap_area> va);
    bool purge_vmap_area_lazy(unsigned long start, unsigned long end, bool full_pool_decay);
    void purge_vmap_node(vmap_node& vn);
    void drain_vmap_area_work();
    void free_list_del(vmap_block* vb, vmap_block_queue& vbq);
    std::byte* block_page(vmap_block* vb, unsigned long page_addr);
    template <class PageOf>
    void aligned_vread(std::byte* out, unsigned long addr, std::size_t count, PageOf&& page_of);
    void vmap_ram_vread(std::byte* out, unsigned long addr, std::size_t count, vmap_area* va,
                        unsigned flags);
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
    unsigned nr_nodes_;
    std::unique_ptr<vmap_node[]> nodes_;
    unsigned long vmap_zone_size_; // addr_to_node(): 16 pages per node, 1 with one node
    // vmap_lazy_nr: pages on lazy lists and on purge lists not yet finished.
    std::atomic<long> vmap_lazy_nr_{0};
    std::atomic<bool> drain_pending_{false}; // drain_vmap_work queued
    std::atomic<std::uint64_t> lazy_purges_{0}, drain_runs_{0};
    // Areas a pool lost to a racing list replacement (decay_va_pool_node()):
    // unreachable, as in the kernel, but freed with the allocator. Touched
    // only when a loss happened, so its lock orders nothing else.
    std::mutex leaked_lock_;
    std::vector<std::unique_ptr<vmap_area>> leaked_;
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
    if (c.nr_cpus != 0 && c.nr_cpus < topo.nr_cpu_ids())
        throw std::invalid_argument("vmap: nr_cpus (NR_CPUS) must be 0 or at least nr_cpu_ids");
    unsigned bits = c.bbmap_bits ? c.bbmap_bits
                                 : default_bbmap_bits(c.nr_cpus ? c.nr_cpus : topo.nr_cpu_ids(),
                                                      c.page_shift, c.max_alloc);
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
      queues_(topo_),
      nr_nodes_(cfg_.vmap_nodes ? cfg_.vmap_nodes : std::clamp(topo_.num_possible(), 1u, 128u)),
      nodes_(std::make_unique<vmap_node[]>(nr_nodes_)),
      vmap_zone_size_(nr_nodes_ > 1 ? 16UL << cfg_.page_shift : 1) {
    // encode_vn_id() keeps the id in the bits above the type byte of an
    // unsigned; the kernel's comment allows 255 nodes.
    if (nr_nodes_ > 255)
        throw std::invalid_argument("vmap: vmap_nodes must be at most 255");
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
    st.lazy_purges = lazy_purges_.load(std::memory_order_relaxed);
    st.drain_runs = drain_runs_.load(std::memory_order_relaxed);
    st.lazy_pages = vmap_lazy_nr_.load(std::memory_order_relaxed);
    st.pooled_areas = pooled_areas();
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

// The parts, in the order of mm/vmalloc.c.
#include <vmap/audit.hpp> // allocator::check()
#include <vmap/kva.hpp>
#include <vmap/lazy.hpp>
#include <vmap/map_ram.hpp>
#include <vmap/vb_alloc.hpp>
#include <vmap/vb_free.hpp>
#include <vmap/vb_hash.hpp>
#include <vmap/vread.hpp>
