// SPDX-License-Identifier: MIT
// vmap/list.hpp: an intrusive doubly linked list that readers walk under RCU
// (the kernel's list_add_tail_rcu / list_del_rcu / list_for_each_entry_rcu).
//
// Writers hold the list's lock. `next` is atomic because readers follow it
// without the lock; `prev` belongs to writers alone. A removed node keeps its
// `next` so a reader standing on it can walk on, and gets prev == nullptr
// (the kernel's LIST_POISON2), which also marks "on no list".
// Every change checks its neighbours first (CONFIG_DEBUG_LIST): a corrupted
// list is a fatal error named at the change, not a crash later.
#pragma once

#include <atomic>

#include <vmap/check.hpp>

namespace vmap {

struct rcu_list_node {
    std::atomic<rcu_list_node*> next{nullptr};
    rcu_list_node* prev = nullptr;

    bool on_list() const { return prev != nullptr; }
};

inline void list_init(rcu_list_node& head) {
    head.next.store(&head, std::memory_order_relaxed);
    head.prev = &head;
}

inline void list_add_tail_rcu(rcu_list_node& node, rcu_list_node& head) {
    VMAP_BUG(node.on_list(), "list_add: node is already on a list");
    rcu_list_node* last = head.prev;
    VMAP_BUG(last->next.load(std::memory_order_relaxed) != &head,
             "list_add corruption: head->prev->next != head");
    node.next.store(&head, std::memory_order_relaxed);
    node.prev = last;
    // Publication: a reader that sees `node` sees it initialised.
    last->next.store(&node, std::memory_order_seq_cst);
    head.prev = &node;
}

inline void list_del_rcu(rcu_list_node& node) {
    VMAP_BUG(!node.on_list(), "list_del: node is on no list (double removal)");
    rcu_list_node* next = node.next.load(std::memory_order_relaxed);
    rcu_list_node* prev = node.prev;
    VMAP_BUG(prev->next.load(std::memory_order_relaxed) != &node,
             "list_del corruption: prev->next != node");
    VMAP_BUG(next->prev != &node, "list_del corruption: next->prev != node");
    next->prev = prev;
    prev->next.store(next, std::memory_order_seq_cst);
    node.prev = nullptr;
}

// list_for_each_entry_rcu over nodes (the caller casts to its type).
// Caller holds rcu::read_guard or the list's lock.
template <class F>
void list_for_each_rcu(const rcu_list_node& head, F&& f) {
    for (rcu_list_node* n = head.next.load(std::memory_order_seq_cst); n != &head;
         n = n->next.load(std::memory_order_seq_cst))
        if (!f(n))
            break;
}

} // namespace vmap
