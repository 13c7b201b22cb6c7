// SPDX-License-Identifier: MIT
// tests/test_scheduler.cpp: the deterministic scheduler's fibers
// (fuzz/harness/scheduler.hpp). Each fiber is a thread to the library (its
// own vmap::task) and to TSan (its own vector clock, switches that order
// nothing); a deadlock is reported with every thread's position; the same
// choices give the same interleaving.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include <vmap/vmap.hpp>

#include "harness/scheduler.hpp"

#if !defined(VMAP_SCHED_HOOKS) || !VMAP_SCHED_HOOKS
#error "test_scheduler needs the scheduling points: build it with VMAP_SCHED_HOOKS=1"
#endif

namespace {

using bodies = std::vector<std::function<void()>>;

std::vector<std::uint8_t> run(std::vector<std::uint8_t> choices, bodies b) {
    harness::det_scheduler s(choices, 1);
    s.run(std::move(b));
    return s.trace();
}

TEST(Scheduler, EachFiberRunsItsOwnTask) {
    vmap::task* main_task = &vmap::current();
    std::vector<vmap::task*> seen(3);
    std::vector<int> cpu(3);
    vmap::spinlock l("l");
    bodies b;
    for (unsigned i = 0; i < 3; ++i)
        b.push_back([&, i] {
            vmap::cpu_binding on(i + 1);
            l.lock(); // scheduling points: the others run in between
            seen[i] = &vmap::current();
            l.unlock();
            cpu[i] = vmap::bound_cpu();
            EXPECT_FALSE(vmap::rcu::in_reader());
            vmap::rcu::read_lock(); // a reader per fiber: nests in none of the others
            l.lock();
            l.unlock();
            vmap::rcu::read_unlock();
        });
    run({5, 3, 1, 7, 2, 4, 6, 1, 3, 5, 7, 9}, std::move(b));
    EXPECT_NE(seen[0], seen[1]);
    EXPECT_NE(seen[1], seen[2]);
    EXPECT_NE(seen[0], main_task);
    EXPECT_EQ(cpu, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(&vmap::current(), main_task);
    EXPECT_EQ(vmap::bound_cpu(), -1);
}

TEST(Scheduler, TheSameChoicesGiveTheSameInterleaving) {
    auto once = [] {
        std::vector<int> order;
        vmap::spinlock l("l");
        bodies b;
        for (int i = 0; i < 3; ++i)
            b.push_back([&, i] {
                for (int k = 0; k < 5; ++k) {
                    l.lock();
                    order.push_back(i);
                    l.unlock();
                }
            });
        auto trace = run({9, 1, 4, 4, 7, 3, 0, 5, 11, 2}, std::move(b));
        return std::make_pair(trace, order);
    };
    auto first = once();
    EXPECT_GT(first.first.size(), 20u);
    for (int i = 0; i < 20; ++i)
        EXPECT_EQ(once(), first);
}

// Thread 0 takes a, thread 1 takes b, then each wants the other's lock.
TEST(SchedulerDeathTest, ADeadlockIsReportedWithEveryThreadsPosition) {
    auto deadlock = [] {
        vmap::spinlock a("lock a"), b("lock b");
        bodies both;
        both.push_back([&] {
            harness::det_scheduler::at_op(4);
            a.lock();
            b.lock();
        });
        both.push_back([&] {
            harness::det_scheduler::at_op(7);
            b.lock();
            a.lock();
        });
        run({0, 0, 3, 0, 0, 0, 0, 0}, std::move(both));
    };
    EXPECT_DEATH(deadlock(), "det_scheduler: deadlock: no thread can run\n"
                             "  thread 0: op #4, spinning at lock_spin on lock b\n"
                             "  thread 1: op #7, spinning at lock_spin on lock a");
}

#ifdef HARNESS_TSAN
// Two fibers write one plain int with a scheduling point between them: a
// switch is no happens-before edge, so TSan must see the race (sanitizers/
// tsan.options: halt_on_error, exitcode 66).
TEST(SchedulerDeathTest, TsanSeesARaceBetweenFibers) {
    auto race = [] {
        int shared = 0;
        vmap::spinlock l("l");
        auto body = [&] {
            shared++;
            l.lock(); // a scheduling point before and after
            l.unlock();
            shared++;
        };
        run({0, 3, 0, 0, 2, 0, 0, 0}, bodies{body, body});
    };
    EXPECT_EXIT(race(), testing::ExitedWithCode(66), "WARNING: ThreadSanitizer: data race");
}

// The same accesses under the lock: the lock's release/acquire is the only
// edge, and TSan sees it.
TEST(Scheduler, TsanSeesTheLockBetweenFibers) {
    int shared = 0;
    vmap::spinlock l("l");
    auto body = [&] {
        l.lock();
        shared++;
        l.unlock();
        l.lock();
        shared++;
        l.unlock();
    };
    run({0, 3, 0, 0, 2, 0, 0, 0}, {body, body});
    EXPECT_EQ(shared, 4); // after run(): joined
}
#endif

} // namespace
