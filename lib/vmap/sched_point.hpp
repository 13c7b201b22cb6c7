// SPDX-License-Identifier: MIT
// vmap/sched_point.hpp: scheduling points in the synchronisation layer.
//
// A deterministic scheduler (fuzz/vmap_threads) runs one thread at a time and
// decides at each of these points which thread goes next, so a fuzz input
// chooses the interleaving. In normal builds the points compile to nothing;
// configure with VMAP_SCHED_HOOKS=ON to turn them into calls of a hook that
// the scheduler installs on the tasks it manages (vmap/current.hpp: a hook
// belongs to the running task, thread or fiber).
#pragma once

#include <vmap/current.hpp>

namespace vmap {

enum class sched_kind : unsigned char {
    lock_acquire,   // about to take a spinlock
    lock_spin,      // found a spinlock held; the thread cannot progress
    lock_release,   // just released a spinlock
    rcu_enter,      // entering an outermost RCU read-side section
    rcu_exit,       // leaving it
    rcu_wait,       // synchronize() waiting for a reader
    precheck,       // vb_alloc's lockless look at vb->free
    publish,        // a block is about to become visible (xarray, free list)
    rcu_torture,    // the harness's rcutorture: a reader holding its object, a writer
    vb_free_window, // vb_free() between its two vb->lock sections
    may_sleep,      // new_vmap_block() after alloc_vmap_area(), which may sleep
                    // (and migrate the thread) before the CPU is read
};

// One hook per task: only tasks the scheduler manages stop at points.
inline void set_sched_hook(sched_hook_fn fn) {
    current().sched_hook = fn;
}
inline sched_hook_fn sched_hook() {
    return current().sched_hook;
}

} // namespace vmap

#if defined(VMAP_SCHED_HOOKS) && VMAP_SCHED_HOOKS
#define VMAP_SCHED_POINT(kind, object)                                                             \
    do {                                                                                           \
        if (::vmap::sched_hook_fn hook_ = ::vmap::current().sched_hook)                            \
            hook_(::vmap::sched_kind::kind, (object));                                             \
    } while (0)
#else
#define VMAP_SCHED_POINT(kind, object) ((void)0)
#endif
