// SPDX-License-Identifier: MIT
// vmap/spinlock.hpp: a test-and-test-and-set spinlock with lock_stat counters.
//
// Counters follow the kernel's lock_stat: `acquisitions` counts every lock(),
// `contentions` those that found the lock held. Both are written only by the
// holder (so no atomic RMW on the hot path) and read with relaxed loads by
// anyone, which keeps them exact and TSan-clean.
//
// Userspace has no preemption control, so after a short spin a waiter yields
// the CPU: with more threads than cores (the 64-thread benchmarks on two
// cores) a pure spin would burn the holder's time slice.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include <vmap/check.hpp>
#include <vmap/current.hpp>
#include <vmap/sched_point.hpp>

namespace vmap {

struct lock_stats {
    std::uint64_t acquisitions = 0;
    std::uint64_t contentions = 0;

    lock_stats& operator+=(const lock_stats& o) {
        acquisitions += o.acquisitions;
        contentions += o.contentions;
        return *this;
    }
};

namespace detail {
// The owner identity: the running task (a fiber's, or the OS thread's own).
inline const void* thread_token() {
    return &current();
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
} // namespace detail

class spinlock {
  public:
    explicit spinlock(const char* name = "spinlock") : name_(name) {}
    spinlock(const spinlock&) = delete;
    spinlock& operator=(const spinlock&) = delete;

    void lock() {
        VMAP_SCHED_POINT(lock_acquire, this);
        bool contended = false;
        while (locked_.exchange(true, std::memory_order_acquire)) {
            contended = true;
            unsigned spins = 0;
            while (locked_.load(std::memory_order_relaxed)) {
                VMAP_SCHED_POINT(lock_spin, this);
                if (++spins < 64)
                    detail::cpu_relax();
                else
                    std::this_thread::yield();
            }
        }
        bump(acquisitions_);
        if (contended)
            bump(contentions_);
        owner_.store(detail::thread_token(), std::memory_order_relaxed);
    }

    bool try_lock() {
        if (locked_.load(std::memory_order_relaxed) ||
            locked_.exchange(true, std::memory_order_acquire))
            return false;
        bump(acquisitions_);
        owner_.store(detail::thread_token(), std::memory_order_relaxed);
        return true;
    }

    void unlock() {
        VMAP_BUG(!held_by_me(), std::string("unlock of ") + name_ + " not held by this thread");
        owner_.store(nullptr, std::memory_order_relaxed);
        locked_.store(false, std::memory_order_release);
        VMAP_SCHED_POINT(lock_release, this);
    }

    // lockdep_assert_held() for this lock and the running task.
    bool held_by_me() const {
        return locked_.load(std::memory_order_relaxed) &&
               owner_.load(std::memory_order_relaxed) == detail::thread_token();
    }
    void assert_held(const char* where) const {
        VMAP_BUG(!held_by_me(), std::string(where) + ": " + name_ + " is not held");
    }

    lock_stats stats() const {
        return lock_stats{acquisitions_.load(std::memory_order_relaxed),
                          contentions_.load(std::memory_order_relaxed)};
    }
    // Only with the lock quiescent (no holder): benchmarks reset between runs.
    void reset_stats() {
        acquisitions_.store(0, std::memory_order_relaxed);
        contentions_.store(0, std::memory_order_relaxed);
    }
    const char* name() const { return name_; }

  private:
    static void bump(std::atomic<std::uint64_t>& c) {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    std::atomic<bool> locked_{false};
    std::atomic<const void*> owner_{nullptr};
    std::atomic<std::uint64_t> acquisitions_{0};
    std::atomic<std::uint64_t> contentions_{0};
    const char* name_;
};

} // namespace vmap
