// SPDX-License-Identifier: MIT
// harness/rcu_torture.hpp: an rcutorture-style check of vmap/rcu.hpp, for
// the threads the deterministic scheduler runs (fuzz/vmap_threads.cpp).
//
// One RCU-protected pointer, `current`, to an object carrying a magic word.
// A writer replaces the object and hands the old one to rcu::call(), whose
// callback reclaims it with rcu::free_poisoned() (destroyed, filled with
// POISON_FREE, freed). A reader enters a read-side section, loads `current`
// and keeps the object across scheduling points (sched_kind::rcu_torture), so
// other threads run, replace it and end grace periods (the input decides
// when, harness/scheduler.hpp); after every point the object must still be
// alive. Reclaimed under a reader, it is a heap-use-after-free under ASan,
// a race with the free under TSan, and else a poisoned magic word, reported
// as "rcu torture: ... reclaimed under a reader".
//
// The objects are all allocated before the threads start (the pool), and
// `current` is stored and loaded relaxed: the check adds no happens-before
// edge between threads that TSan would see, so it hides none of the
// allocator's races. The only edges are RCU's own: a reader's exit and the
// reclaimer's scan.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <vmap/rcu.hpp>
#include <vmap/sched_point.hpp>

namespace harness {

class rcu_torture {
  public:
    static constexpr std::uint64_t alive = 0x616c697665216f6bULL; // "alive!ok"

    struct object : vmap::rcu::head {
        std::uint64_t magic = alive;
        std::uint64_t serial = 0;
    };

    // Room for `writes` replacements; call from one thread, before any
    // reader or writer runs.
    explicit rcu_torture(std::size_t writes) {
        pool_.reserve(writes + 1);
        for (std::size_t i = 0; i <= writes; ++i) {
            pool_.push_back(new object);
            pool_.back()->serial = i;
        }
        current_.store(pool_[0], std::memory_order_relaxed);
    }

    // Quiescent: every reader and writer has finished. Reclaims the current
    // object through RCU as a writer would, frees the unused ones, and waits
    // for every callback.
    ~rcu_torture() {
        vmap::rcu::call(current_.load(std::memory_order_relaxed), reclaim);
        for (std::size_t i = next_.load(std::memory_order_relaxed) + 1; i < pool_.size(); ++i)
            delete pool_[i];
        vmap::rcu::barrier();
    }
    rcu_torture(const rcu_torture&) = delete;
    rcu_torture& operator=(const rcu_torture&) = delete;

    // rcu_assign_pointer() + call_rcu(): publishes the next object of the
    // pool and queues the old one for reclamation. No-op once the pool is
    // used up.
    void write() {
        VMAP_SCHED_POINT(rcu_torture, this); // a writer may be stopped before it publishes
        std::size_t i = next_.fetch_add(1, std::memory_order_relaxed) + 1;
        if (i >= pool_.size()) {
            next_.store(pool_.size() - 1, std::memory_order_relaxed);
            return;
        }
        object* old = current_.exchange(pool_[i], std::memory_order_relaxed);
        vmap::rcu::call(old, reclaim);
    }

    // A reader: holds the current object across `points` scheduling points
    // and checks it after each. Returns "" or what went wrong.
    std::string read(unsigned points) {
        vmap::rcu::read_guard rcu;
        object* p = current_.load(std::memory_order_relaxed);
        std::uint64_t serial = p->serial;
        for (unsigned k = 0;; ++k) {
            if (p->magic != alive)
                return describe(p, serial, k);
            if (k == points)
                return "";
            VMAP_SCHED_POINT(rcu_torture, p);
        }
    }

  private:
    static void reclaim(vmap::rcu::head* h) { vmap::rcu::free_poisoned(static_cast<object*>(h)); }

    static std::string describe(const object* p, std::uint64_t serial, unsigned k) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "rcu torture: object #%llu reclaimed under a reader that holds it since "
                      "before its replacement (magic %#llx after %u scheduling points)",
                      static_cast<unsigned long long>(serial),
                      static_cast<unsigned long long>(p->magic), k);
        return buf;
    }

    std::vector<object*> pool_;
    std::atomic<object*> current_{nullptr};
    std::atomic<std::size_t> next_{0}; // the pool index last published
};

} // namespace harness
