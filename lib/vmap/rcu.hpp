// SPDX-License-Identifier: MIT
// vmap/rcu.hpp: a small userspace RCU written on std::atomic.
//
// Why our own: liburcu 0.13 (Debian) synchronises through fences and futexes
// that ThreadSanitizer cannot see, so every reclamation would be reported as
// a race. Here every edge between a reader and the reclaimer is an atomic
// release/acquire pair that TSan understands.
//
// The scheme, one process-wide domain like the kernel's:
//   - gp is a grace-period counter.
//   - every task that reads (an OS thread, or a fiber: vmap/current.hpp) has
//     a registered record whose ctr is 0 outside
//     a read-side section and, inside the outermost one, the value of gp it
//     saw on entry (nesting is counted privately).
//   - call() stamps a callback with a fresh epoch e = ++gp. A callback may run
//     once a scan of the readers that began after e was handed out finds each
//     with ctr == 0 or ctr >= e: any reader that could still see the unlinked
//     object entered before e was handed out. (A scan that began earlier
//     proves nothing about e: a reader it saw outside may have entered since.)
//   - synchronize() does the same for "now" and waits; poll() runs what is
//     already safe without waiting; barrier() waits and runs everything.
//   - when callbacks run is a policy: call() polls once poll_batch() of them
//     are pending (64 by default, set_poll_batch(); the fuzz harness sets 1,
//     so a grace period ends as soon as the last reader leaves), and anyone
//     may poll() at any moment; the deterministic scheduler does so when the
//     fuzz input says (harness/scheduler.hpp), so the input ends grace
//     periods.
//   - free_poisoned() reclaims an object by filling it with POISON_FREE
//     before freeing it: a stale reader meets a use-after-free under ASan and
//     0x6b6b... values elsewhere.
// Invariants: a thread never synchronizes inside its own read-side section
// (it would wait for itself), and nothing queued by call() is lost: barrier()
// runs it all, and allocators call barrier() when they are destroyed.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <vmap/check.hpp>
#include <vmap/current.hpp>
#include <vmap/sched_point.hpp>

namespace vmap::rcu {

// The kernel's struct rcu_head: embedded in the object to be reclaimed.
struct head {
    head* next = nullptr;
    void (*func)(head*) = nullptr;
    std::uint64_t epoch = 0;
};

namespace detail {

struct reader {
    std::atomic<std::uint64_t> ctr{0};
    unsigned nesting = 0; // touched by the owner task only
};

struct domain {
    std::atomic<std::uint64_t> gp{1};
    std::mutex registry_mu;
    std::vector<reader*> readers;
    std::mutex cb_mu;
    head* cb_first = nullptr; // FIFO, so epochs are non-decreasing
    head* cb_last = nullptr;
    std::atomic<std::size_t> cb_pending{0};
    std::atomic<std::size_t> batch{64}; // poll_batch(), default_poll_batch
};

inline domain& global() {
    static domain d;
    return d;
}

// Registration: on a task's first read-side section. An OS thread's own
// task keeps its reader in a thread_local registration, removed when the
// thread exits; an owned task's (vmap/current.hpp) is removed when the task
// ends. Either way the hot path is one load from current().
inline void add_reader(reader* r) {
    domain& d = global();
    std::lock_guard<std::mutex> g(d.registry_mu);
    d.readers.push_back(r);
}

inline void remove_reader(reader* r, const char* who) {
    VMAP_BUG(r->nesting != 0, std::string(who) + " exits inside an RCU read-side section");
    domain& d = global();
    {
        std::lock_guard<std::mutex> g(d.registry_mu);
        d.readers.erase(std::find(d.readers.begin(), d.readers.end(), r));
    }
    delete r;
}

struct registration {
    reader* r = nullptr;
    reader& get() {
        if (!r) {
            r = new reader;
            add_reader(r);
        }
        return *r;
    }
    ~registration() {
        if (!r)
            return;
        remove_reader(r, "thread");
        ::vmap::detail::thread_task.rcu_reader = nullptr;
    }
};

inline void owned_task_exit(task& t) {
    remove_reader(t.rcu_reader, "task");
    t.rcu_reader = nullptr;
    t.rcu_exit = nullptr;
}

[[gnu::noinline]] inline reader& register_reader(task& t) {
    if (is_thread_task(t)) {
        static thread_local registration reg;
        t.rcu_reader = &reg.get();
    } else {
        t.rcu_reader = new reader;
        add_reader(t.rcu_reader);
        t.rcu_exit = &owned_task_exit;
    }
    return *t.rcu_reader;
}

inline reader& this_reader() {
    task& t = current();
    if (reader* r = t.rcu_reader) [[likely]]
        return *r;
    return register_reader(t);
}

// Smallest ctr of any reader inside a section; UINT64_MAX if none.
inline std::uint64_t oldest_reader(domain& d) {
    std::uint64_t oldest = UINT64_MAX;
    std::lock_guard<std::mutex> g(d.registry_mu);
    for (reader* r : d.readers) {
        // seq_cst: with the reader's seq_cst entry and the writers' seq_cst
        // unlinking stores this is a store-buffering pattern; a reader we see
        // as quiescent must see every unlink made before our scan.
        std::uint64_t c = r->ctr.load(std::memory_order_seq_cst);
        if (c != 0)
            oldest = std::min(oldest, c);
    }
    return oldest;
}

} // namespace detail

inline void read_lock() {
    detail::reader& r = detail::this_reader();
    if (r.nesting++ == 0) {
        VMAP_SCHED_POINT(rcu_enter, &r);
        // seq_cst RMW: orders this entry against a reclaimer's scan, and
        // continues the release sequence of our last exit for TSan.
        r.ctr.exchange(detail::global().gp.load(std::memory_order_seq_cst),
                       std::memory_order_seq_cst);
    }
}

inline void read_unlock() {
    detail::reader& r = detail::this_reader();
    VMAP_BUG(r.nesting == 0, "rcu::read_unlock without read_lock");
    if (--r.nesting == 0) {
        r.ctr.store(0, std::memory_order_release);
        VMAP_SCHED_POINT(rcu_exit, &r);
    }
}

inline bool in_reader() {
    return detail::this_reader().nesting != 0;
}

// The kernel's rcu_read_lock()/rcu_read_unlock() as a scope.
class read_guard {
  public:
    read_guard() { read_lock(); }
    ~read_guard() { read_unlock(); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
};

// Waits until every reader that might see what was unlinked before the call
// has left its section.
inline void synchronize() {
    VMAP_BUG(in_reader(), "rcu::synchronize inside a read-side section (self-deadlock)");
    detail::domain& d = detail::global();
    std::uint64_t target = d.gp.fetch_add(1, std::memory_order_seq_cst) + 1;
    unsigned spins = 0;
    while (detail::oldest_reader(d) < target) {
        VMAP_SCHED_POINT(rcu_wait, &d);
        if (++spins > 16)
            std::this_thread::yield();
    }
}

namespace detail {
// The newest epoch whose callbacks may run now. A reader the scan sees
// outside may enter right after it and then queue a callback (or see an
// object that is unlinked and queued later); that callback's epoch is above
// any gp read before the scan, so the limit is the smaller of that gp and the
// oldest reader. (Using the oldest reader alone let poll() and barrier() run
// a callback queued after the scan inside a section that was still open.)
inline std::uint64_t safe_epoch(domain& d) {
    std::uint64_t handed_out = d.gp.load(std::memory_order_seq_cst);
#if defined(VMAP_BUG_VARIANT_RCU_NO_GRACE)
    // BUG VARIANT rcu_no_grace (this port, to prove the harness can end grace
    // periods under a reader): every queued callback counts as ready, whether
    // or not a reader that could still see its object is inside.
    return handed_out;
#else
    return std::min(handed_out, oldest_reader(d));
#endif
}

// Detaches the callbacks whose epoch is <= limit.
inline head* take_ready(domain& d, std::uint64_t limit) {
    std::lock_guard<std::mutex> g(d.cb_mu);
    head* first = d.cb_first;
    head* last = nullptr;
    head* h = first;
    std::size_t n = 0;
    while (h && h->epoch <= limit) {
        last = h;
        h = h->next;
        ++n;
    }
    if (!last)
        return nullptr;
    d.cb_first = h;
    if (!h)
        d.cb_last = nullptr;
    last->next = nullptr;
    d.cb_pending.fetch_sub(n, std::memory_order_relaxed);
    return first;
}

inline void run(head* h) {
    while (h) {
        head* next = h->next;
        h->func(h);
        h = next;
    }
}
} // namespace detail

// Runs, without waiting, every callback whose grace period has ended.
inline void poll() {
    detail::domain& d = detail::global();
    if (d.cb_pending.load(std::memory_order_relaxed) == 0)
        return;
    detail::run(detail::take_ready(d, detail::safe_epoch(d)));
}

// call_rcu(): func(h) runs after every current reader has left. Batches of
// callbacks are run by poll() once poll_batch() have piled up; it never
// waits, so call() is safe under spinlocks and inside read-side sections.
inline constexpr std::size_t default_poll_batch = 64;

inline std::size_t poll_batch() {
    return detail::global().batch.load(std::memory_order_relaxed);
}

// Process-wide, like the domain: 1 runs every callback that is ready at
// call() time (and the rest at the next poll()); 0 counts as 1.
inline void set_poll_batch(std::size_t n) {
    detail::global().batch.store(n ? n : 1, std::memory_order_relaxed);
}

inline void call(head* h, void (*func)(head*)) {
    detail::domain& d = detail::global();
    h->func = func;
    h->next = nullptr;
    std::size_t pending;
    {
        std::lock_guard<std::mutex> g(d.cb_mu);
        h->epoch = d.gp.fetch_add(1, std::memory_order_seq_cst) + 1;
        if (d.cb_last)
            d.cb_last->next = h;
        else
            d.cb_first = h;
        d.cb_last = h;
        pending = d.cb_pending.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    if (pending >= poll_batch())
        poll();
}

// rcu_barrier(): waits for a grace period and runs every queued callback,
// including those that callbacks queue in turn.
inline void barrier() {
    detail::domain& d = detail::global();
    while (d.cb_pending.load(std::memory_order_relaxed) != 0) {
        synchronize();
        detail::run(detail::take_ready(d, detail::safe_epoch(d)));
    }
}

inline std::size_t pending_callbacks() {
    return detail::global().cb_pending.load(std::memory_order_relaxed);
}

// The kernel's POISON_FREE: what a reclaimed object is filled with.
inline constexpr unsigned char poison_free = 0x6b;

// Destroys *p and fills its bytes with poison_free; the memory stays
// allocated (free_poisoned() frees it).
template <class T>
void poison(T* p) {
    p->~T();
    std::memset(static_cast<void*>(p), poison_free, sizeof(T));
}

// For RCU callbacks: destroy, poison, free (p came from `new T`). Under ASan
// a stale reader's access is a heap-use-after-free; without it the object's
// fields read as 0x6b6b... until the memory is reused.
template <class T>
void free_poisoned(T* p) {
    poison(p);
    ::operator delete(static_cast<void*>(p));
}

// Registers the running task now rather than at its first read-side
// section (the deterministic scheduler must not block in the registry).
inline void register_thread() {
    (void)detail::this_reader();
}

} // namespace vmap::rcu
