// SPDX-License-Identifier: MIT
// vmap/xarray.hpp: a 64-way radix tree in the shape of the kernel's xarray
// (lib/xarray.c), storing T* under 64-bit keys.
//
// Shape (the invariants check() verifies):
//   - height h is the minimum for the largest key: 0 when the tree is empty
//     or holds only key 0 (then `head` is that entry itself, as in the
//     kernel), else ceil(bit_width(max_key) / 6). The root's shift is
//     6 * (h - 1); a node at shift s covers 64 << s keys.
//   - no node is empty; each node's `count` is its number of used slots and
//     its parent/offset point back at the slot that holds it.
//   - so the node count is exactly the radix-tree formula
//     sum over s = 0, 6, .., 6(h-1) of |{ key >> (s + 6) }|.
// Concurrency: insert and erase take xa_lock; load and for_each take none
// and run under RCU. Removed nodes are freed through rcu::call, so a reader
// never touches freed memory; a reader racing with erase sees the entry or
// not, as if it ran just before or just after.
//
// Node memory: 64 slots + header. The kernel's struct xa_node is 576 bytes
// (three mark bitmaps we do not need); bytes() reports our own size.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <iterator>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include <vmap/check.hpp>
#include <vmap/rcu.hpp>
#include <vmap/sched_point.hpp>
#include <vmap/spinlock.hpp>

namespace vmap {

inline constexpr unsigned xa_chunk_shift = 6;
inline constexpr unsigned xa_chunk_size = 1u << xa_chunk_shift;
inline constexpr unsigned xa_chunk_mask = xa_chunk_size - 1;

// The minimum height of a tree holding `max_key`.
constexpr unsigned xa_height_for(std::uint64_t max_key) {
    return max_key == 0 ? 0 : (static_cast<unsigned>(std::bit_width(max_key)) + 5) / 6;
}

enum class xa_insert_result { ok, busy, nomem };

template <class T>
class xarray {
    static_assert(alignof(T) >= 2, "bit 0 of an entry tags internal nodes");

  public:
    struct node {
        rcu::head rcu;            // first: rcu_head -> node is a plain cast
        unsigned char shift = 0;  // 0 for leaves
        unsigned char offset = 0; // our slot in the parent
        unsigned char count = 0;  // used slots
        node* parent = nullptr;
        std::atomic<std::uintptr_t> slots[xa_chunk_size] = {};
    };
    static_assert(std::is_standard_layout_v<node>);
    static constexpr std::size_t node_bytes = sizeof(node);

    explicit xarray(const char* lock_name = "xa_lock") : lock_(lock_name) {}
    xarray(const xarray&) = delete;
    xarray& operator=(const xarray&) = delete;

    // No reader may be inside the tree any more.
    ~xarray() {
        destroy(head_.load(std::memory_order_relaxed));
        rcu::barrier(); // nodes erased earlier may still wait for a grace period
    }

    // xa_load(): lock-free, under its own RCU read-side section.
    T* load(std::uint64_t index) const {
        rcu::read_guard g;
        // seq_cst loads: see rcu.hpp; they are plain loads on x86.
        return walk_to<std::memory_order_seq_cst>(index);
    }

    // xa_insert(): fails with busy if the slot holds an entry, with nomem
    // (tree unchanged) if a node cannot be allocated.
    //
    // Nodes are allocated with xa_lock dropped. The kernel first tries a
    // GFP_NOWAIT slab allocation under the lock and only then drops it
    // (__xas_nomem()); operator new can block on a malloc arena mutex, so
    // we allocate before locking, on a lock-free count of what the insert
    // needs, and count again under the lock: if the tree grew meanwhile and
    // the spares fall short, unlock, allocate, retry. With block_index keys
    // the per-CPU trees grow and shrink on almost every block, so this is
    // their hot path.
    xa_insert_result insert(std::uint64_t index, T* entry) {
        VMAP_BUG(entry == nullptr, "xa_insert of a null entry");
        spare_nodes spare;
        std::size_t need;
        {
            rcu::read_guard g;
            need = nodes_needed<std::memory_order_seq_cst>(index);
        }
        for (;;) {
            if (!spare.fill(need))
                return xa_insert_result::nomem;
            std::lock_guard<spinlock> g(lock_);
            if (load_locked(index))
                return xa_insert_result::busy;
            need = nodes_needed<std::memory_order_relaxed>(index);
            if (spare.n >= need) {
                insert_locked(index, entry, spare);
                return xa_insert_result::ok;
            }
        } // ~spare_nodes frees what the insert did not take, after the unlock
    }

    // xa_erase(): returns the old entry (nullptr if none), frees the nodes
    // left empty and shrinks the tree to the minimum height.
    T* erase(std::uint64_t index) {
        // Nodes are handed to RCU after xa_lock is dropped: rcu::call takes
        // the domain's mutex, and doing that under xa_lock made the per-CPU
        // xarrays, which grow and shrink on almost every insert and erase,
        // more contended than the global one (bench/results).
        retired dead;
        T* old;
        {
            std::lock_guard<spinlock> g(lock_);
            old = erase_locked(index, dead);
        }
        for (unsigned i = 0; i < dead.n; ++i)
            rcu::call(&dead.nodes[i]->rcu,
                      [](rcu::head* rh) { delete reinterpret_cast<node*>(rh); });
        return old;
    }

  private:
    // Nodes allocated for one insert, outside xa_lock: at most one new root
    // per level grown plus one node per level below (11 levels at most).
    struct spare_nodes {
        node* nodes[2 * 11];
        std::size_t n = 0;
        spare_nodes() = default;
        spare_nodes(const spare_nodes&) = delete;
        spare_nodes& operator=(const spare_nodes&) = delete;
        ~spare_nodes() {
            while (n)
                delete nodes[--n];
        }
        bool fill(std::size_t want) {
            VMAP_BUG(want > std::size(nodes), "xa_insert: more nodes needed than levels");
            while (n < want) {
                node* m = alloc_node();
                if (!m)
                    return false;
                nodes[n++] = m;
            }
            return true;
        }
        node* take() {
            VMAP_BUG(n == 0, "xa_insert: node estimate was too low");
            return nodes[--n];
        }
    };

    // The insert proper, with xa_lock held, the slot free and `spare`
    // holding at least nodes_needed(index) nodes. It takes exactly that many.
    void insert_locked(std::uint64_t index, T* entry, spare_nodes& spare) {
        const std::size_t keep = spare.n - nodes_needed<std::memory_order_relaxed>(index);
        std::uintptr_t h = head_.load(std::memory_order_relaxed);
        if (h == 0 && index == 0) {
            publish(head_, from_entry(entry));
            return;
        }
        unsigned want = xa_height_for(index);
        if (h == 0) {
            // xa_expand on an empty tree: one root at the right height.
            node* root = spare.take();
            root->shift = static_cast<unsigned char>((want - 1) * xa_chunk_shift);
            nodes_.fetch_add(1, std::memory_order_relaxed);
            publish(head_, from_node(root));
        }
        while (height_locked() < want) {
            // Grow: the old head becomes slot 0 of a new root.
            std::uintptr_t old = head_.load(std::memory_order_relaxed);
            node* root = spare.take();
            root->shift = static_cast<unsigned char>(height_locked() * xa_chunk_shift);
            root->slots[0].store(old, std::memory_order_relaxed);
            root->count = 1;
            if (is_node(old)) {
                to_node(old)->parent = root;
                to_node(old)->offset = 0;
            }
            nodes_.fetch_add(1, std::memory_order_relaxed);
            publish(head_, from_node(root));
        }
        node* n = to_node(head_.load(std::memory_order_relaxed));
        while (n->shift > 0) {
            unsigned off = (index >> n->shift) & xa_chunk_mask;
            std::uintptr_t s = n->slots[off].load(std::memory_order_relaxed);
            if (!s) {
                node* child = spare.take();
                child->shift = static_cast<unsigned char>(n->shift - xa_chunk_shift);
                child->parent = n;
                child->offset = static_cast<unsigned char>(off);
                nodes_.fetch_add(1, std::memory_order_relaxed);
                publish(n->slots[off], from_node(child));
                ++n->count;
                s = from_node(child);
            }
            n = to_node(s);
        }
        VMAP_BUG(spare.n != keep, "xa_insert: node estimate was wrong");
        VMAP_SCHED_POINT(publish, this);
        publish(n->slots[index & xa_chunk_mask], from_entry(entry));
        ++n->count;
    }

    // Nodes one erase unlinks: at most one per level, twice (emptied, then
    // shrunk away); a tree is at most 11 levels deep.
    struct retired {
        node* nodes[2 * 11];
        unsigned n = 0;
    };

    T* erase_locked(std::uint64_t index, retired& dead) {
        std::uintptr_t h = head_.load(std::memory_order_relaxed);
        if (!is_node(h)) {
            if (index != 0 || h == 0)
                return nullptr;
            publish(head_, 0);
            return to_entry(h);
        }
        node* n = to_node(h);
        if (n->shift < 60 && (index >> n->shift) >= xa_chunk_size)
            return nullptr;
        while (n->shift > 0) {
            std::uintptr_t s =
                n->slots[(index >> n->shift) & xa_chunk_mask].load(std::memory_order_relaxed);
            if (!s)
                return nullptr;
            n = to_node(s);
        }
        unsigned off = index & xa_chunk_mask;
        std::uintptr_t old = n->slots[off].load(std::memory_order_relaxed);
        if (!old)
            return nullptr;
        publish(n->slots[off], 0);
        --n->count;
        // Free empty nodes bottom-up.
        while (n && n->count == 0) {
            node* parent = n->parent;
            if (parent) {
                publish(parent->slots[n->offset], 0);
                --parent->count;
            } else {
                publish(head_, 0);
            }
            retire(n, dead);
            n = parent;
        }
        shrink(dead);
        return to_entry(old);
    }

  public:
    // xa_for_each(): f(index, entry) in key order, under RCU. The caller may
    // hold rcu::read_guard across the walk and its own work.
    template <class F>
    void for_each(F&& f) const {
        rcu::read_guard g;
        std::uintptr_t h = head_.load(std::memory_order_seq_cst);
        if (!is_node(h)) {
            if (h)
                f(std::uint64_t{0}, to_entry(h));
            return;
        }
        walk(to_node(h), 0, f);
    }

    std::size_t nodes() const { return nodes_.load(std::memory_order_relaxed); }
    std::size_t bytes() const { return nodes() * node_bytes; }
    unsigned height() const {
        std::uintptr_t h = head_.load(std::memory_order_seq_cst);
        return is_node(h) ? to_node(h)->shift / xa_chunk_shift + 1 : 0;
    }
    bool empty() const { return head_.load(std::memory_order_seq_cst) == 0; }
    lock_stats stats() const { return lock_.stats(); }
    spinlock& lock() { return lock_; }

    // Structural audit (see the invariants above); appends what is wrong.
    // Takes xa_lock.
    void audit(std::vector<std::string>& out, const std::string& name) const {
        std::lock_guard<spinlock> g(lock_);
        std::uintptr_t h = head_.load(std::memory_order_relaxed);
        std::size_t counted = 0;
        std::uint64_t max_key = 0;
        bool any = false;
        if (is_node(h)) {
            const node* root = to_node(h);
            if (root->parent)
                out.push_back(name + ": root node has a parent");
            audit_node(root, 0, out, name, counted, max_key, any);
        } else if (h) {
            any = true;
        }
        if (counted != nodes())
            out.push_back(name + ": node counter " + std::to_string(nodes()) + " but " +
                          std::to_string(counted) + " nodes reachable");
        if (any && height_locked() != xa_height_for(max_key))
            out.push_back(name + ": height " + std::to_string(height_locked()) +
                          " is not the minimum " + std::to_string(xa_height_for(max_key)) +
                          " for max key " + std::to_string(max_key));
        if (!any && h != 0)
            out.push_back(name + ": empty tree keeps a node");
    }

  private:
    static bool is_node(std::uintptr_t e) { return e & 1; }
    static node* to_node(std::uintptr_t e) {
        return reinterpret_cast<node*>(e & ~std::uintptr_t{1});
    }
    static T* to_entry(std::uintptr_t e) { return reinterpret_cast<T*>(e); }
    static std::uintptr_t from_node(node* n) { return reinterpret_cast<std::uintptr_t>(n) | 1; }
    static std::uintptr_t from_entry(T* e) { return reinterpret_cast<std::uintptr_t>(e); }
    // rcu_assign_pointer(); seq_cst for the store-buffering argument in rcu.hpp.
    static void publish(std::atomic<std::uintptr_t>& slot, std::uintptr_t v) {
        slot.store(v, std::memory_order_seq_cst);
    }

    static node* alloc_node() { return new (std::nothrow) node; }

    unsigned height_locked() const {
        std::uintptr_t h = head_.load(std::memory_order_relaxed);
        return is_node(h) ? to_node(h)->shift / xa_chunk_shift + 1 : 0;
    }

    // The entry at `index`: under RCU (seq_cst) or under xa_lock (relaxed).
    template <std::memory_order order>
    T* walk_to(std::uint64_t index) const {
        std::uintptr_t e = head_.load(order);
        if (!is_node(e))
            return index == 0 ? to_entry(e) : nullptr;
        const node* n = to_node(e);
        if (n->shift < 60 && (index >> n->shift) >= xa_chunk_size)
            return nullptr;
        for (;;) {
            std::uintptr_t s = n->slots[(index >> n->shift) & xa_chunk_mask].load(order);
            if (n->shift == 0)
                return to_entry(s);
            if (!s)
                return nullptr;
            n = to_node(s);
        }
    }
    T* load_locked(std::uint64_t index) const { return walk_to<std::memory_order_relaxed>(index); }

    // Nodes an insert of `index` allocates: new roots for the growth, plus
    // the missing nodes on its path. When the tree grows, the key's top digit
    // is non-zero (want is minimal), so its path leaves the slot-0 chain at
    // the new top root and every level below must be created. Exact under
    // xa_lock (relaxed); an estimate under RCU (seq_cst), which the locked
    // count then checks.
    template <std::memory_order order>
    std::size_t nodes_needed(std::uint64_t index) const {
        std::uintptr_t h = head_.load(order);
        unsigned want = xa_height_for(index);
        if (!is_node(h)) // empty, or key 0's entry in the head (height 0)
            return want == 0 ? 0 : (h == 0 ? want : 2 * want - 1);
        const node* n = to_node(h);
        unsigned have = n->shift / xa_chunk_shift + 1;
        if (want > have)
            return (want - have) + (want - 1);
        while (n->shift > 0) {
            std::uintptr_t s = n->slots[(index >> n->shift) & xa_chunk_mask].load(order);
            if (!s)
                return n->shift / xa_chunk_shift;
            n = to_node(s);
        }
        return 0;
    }

    void shrink(retired& dead) {
        for (;;) {
            std::uintptr_t h = head_.load(std::memory_order_relaxed);
            if (!is_node(h))
                return;
            node* root = to_node(h);
            if (root->count != 1)
                return;
            std::uintptr_t e = root->slots[0].load(std::memory_order_relaxed);
            if (!e)
                return;
            if (is_node(e))
                to_node(e)->parent = nullptr;
            publish(head_, e);
            retire(root, dead);
        }
    }

    void retire(node* n, retired& dead) {
        nodes_.fetch_sub(1, std::memory_order_relaxed);
        VMAP_BUG(dead.n == std::size(dead.nodes), "xa_erase: more nodes retired than levels");
        dead.nodes[dead.n++] = n;
    }

    void destroy(std::uintptr_t e) {
        if (!is_node(e))
            return;
        node* n = to_node(e);
        if (n->shift > 0)
            for (auto& s : n->slots)
                destroy(s.load(std::memory_order_relaxed));
        delete n;
    }

    template <class F>
    static void walk(const node* n, std::uint64_t base, F& f) {
        for (unsigned i = 0; i < xa_chunk_size; ++i) {
            std::uintptr_t s = n->slots[i].load(std::memory_order_seq_cst);
            if (!s)
                continue;
            std::uint64_t index = base | (std::uint64_t{i} << n->shift);
            if (n->shift == 0)
                f(index, to_entry(s));
            else
                walk(to_node(s), index, f);
        }
    }

    void audit_node(const node* n, std::uint64_t base, std::vector<std::string>& out,
                    const std::string& name, std::size_t& counted, std::uint64_t& max_key,
                    bool& any) const {
        ++counted;
        unsigned used = 0;
        for (unsigned i = 0; i < xa_chunk_size; ++i) {
            std::uintptr_t s = n->slots[i].load(std::memory_order_relaxed);
            if (!s)
                continue;
            ++used;
            std::uint64_t index = base | (std::uint64_t{i} << n->shift);
            if (n->shift == 0) {
                if (is_node(s))
                    out.push_back(name + ": leaf slot holds a node");
                any = true;
                max_key = index > max_key ? index : max_key;
                continue;
            }
            if (!is_node(s)) {
                out.push_back(name + ": interior slot holds an entry");
                continue;
            }
            const node* c = to_node(s);
            if (c->parent != n || c->offset != i || c->shift + xa_chunk_shift != n->shift)
                out.push_back(name + ": node at index " + std::to_string(index) +
                              " has a wrong parent, offset or shift");
            audit_node(c, index, out, name, counted, max_key, any);
        }
        if (used != n->count)
            out.push_back(name + ": node count field " + std::to_string(n->count) + " but " +
                          std::to_string(used) + " slots used");
        if (used == 0)
            out.push_back(name + ": empty node kept at base " + std::to_string(base));
    }

    mutable spinlock lock_;
    std::atomic<std::uintptr_t> head_{0};
    std::atomic<std::size_t> nodes_{0};
};

} // namespace vmap
