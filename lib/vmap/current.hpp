// SPDX-License-Identifier: MIT
// vmap/current.hpp: the execution context, the kernel's `current`.
//
// Everything the library keeps per thread of execution lives in one task:
// the RCU reader record, the identity spinlocks record as their owner, the
// CPU the thread is bound to, the scheduling hook, the TLB log's buffer
// cache. The library reads it only through current(), never through a
// thread_local of its own, so whoever runs several threads of execution on
// one OS thread (the deterministic scheduler's fibers, fuzz/harness/
// scheduler.hpp) makes them distinct by switching one pointer: switch_to()
// at every context switch, as the kernel's switch_to() changes `current`.
//
// By default each OS thread runs its own task, kept in TLS: users and the
// stress tests need do nothing. A switched-in task is owned by its switcher
// (owned_task), which must switch back before the task dies and must not
// let it die inside an RCU read-side section or holding a lock.
//
// Cost: current() is one TLS load and a select; trivial types only, so no
// TLS init guard or destructor registration on the hot path.
#pragma once

#include <atomic>
#include <cstdint>

namespace vmap {

enum class sched_kind : unsigned char; // vmap/sched_point.hpp
using sched_hook_fn = void (*)(sched_kind kind, const void* object);

namespace rcu::detail {
struct reader; // vmap/rcu.hpp
}

struct task {
    // vmap/sched_point.hpp: where this task stops at scheduling points.
    sched_hook_fn sched_hook = nullptr;
    // vmap/cpu.hpp: the simulated CPU it runs on, -1 when not bound.
    int bound_cpu = -1;
    // vmap/rcu.hpp: its reader record once registered, and how to
    // unregister it when an owned task ends (current.hpp cannot name rcu).
    rcu::detail::reader* rcu_reader = nullptr;
    void (*rcu_exit)(task&) = nullptr;
    // vmap/tlb_log.hpp: the buffer of the last log it recorded into.
    std::uint64_t tlb_log = 0;
    void* tlb_buffer = nullptr;
    // Not the library's: a slot for whoever runs the task, read only by the
    // task itself (the fuzz harness keeps its planned fault here,
    // fuzz/harness/faults.hpp).
    void* user = nullptr;
    // A process-wide serial, 0 until first asked (id()): unlike an address
    // or a std::thread::id, never reused by a later task.
    std::uint64_t serial = 0;

    std::uint64_t id() {
        if (serial == 0) [[unlikely]]
            serial = next_serial().fetch_add(1, std::memory_order_relaxed);
        return serial;
    }

  private:
    static std::atomic<std::uint64_t>& next_serial() {
        static std::atomic<std::uint64_t> n{1};
        return n;
    }
};

// A task that is not an OS thread's own: its end releases what the library
// attached to it (do_exit()).
class owned_task : public task {
  public:
    owned_task() = default;
    owned_task(const owned_task&) = delete;
    owned_task& operator=(const owned_task&) = delete;
    ~owned_task() {
        if (rcu_exit)
            rcu_exit(*this);
    }
};

namespace detail {
inline thread_local task thread_task; // this OS thread's own
// A task switch_to() made current. Atomic (relaxed: a plain load and store
// on x86-64) because the tasks that share this OS thread all read it and
// each switch writes it: to TSan they are different threads with no
// happens-before between them, and a plain pointer would be a race.
inline thread_local std::atomic<task*> switched_in{nullptr};
} // namespace detail

inline task& current() noexcept {
    task* t = detail::switched_in.load(std::memory_order_relaxed);
    return t ? *t : detail::thread_task;
}

// Makes `t` the calling OS thread's current task (nullptr: its own again);
// returns the task that was switched in before (nullptr: its own).
inline task* switch_to(task* t) noexcept {
    return detail::switched_in.exchange(t, std::memory_order_relaxed);
}

// Whether `t` is the calling OS thread's own task (whose end is the thread's).
inline bool is_thread_task(const task& t) noexcept {
    return &t == &detail::thread_task;
}

} // namespace vmap
