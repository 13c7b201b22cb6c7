// SPDX-License-Identifier: MIT
// tests/test_spinlock.cpp: vmap/spinlock.hpp - lock_stat counters, ownership,
// and the fatal unlock by a thread that does not hold the lock.
//
// Compiled with the library's scheduling points on, so a test can see, without
// sleeping, that a waiter is really spinning on a held lock.
#undef VMAP_SCHED_HOOKS
#define VMAP_SCHED_HOOKS 1

#include <atomic>
#include <barrier>
#include <mutex>
#include <thread>

#include <vmap/spinlock.hpp>

#include "test_support.hpp"

namespace {

using vmap::spinlock;

std::atomic<int> g_spins{0};
void count_spins(vmap::sched_kind kind, const void*) {
    if (kind == vmap::sched_kind::lock_spin)
        g_spins.fetch_add(1);
}

TEST(Spinlock, CountsAreExactInOneThread) {
    spinlock l("test lock");
    EXPECT_STREQ(l.name(), "test lock");
    EXPECT_EQ(l.stats().acquisitions, 0u);
    for (int i = 0; i < 1000; ++i) {
        l.lock();
        l.unlock();
    }
    EXPECT_EQ(l.stats().acquisitions, 1000u);
    EXPECT_EQ(l.stats().contentions, 0u);
    {
        std::lock_guard<spinlock> g(l);
        EXPECT_EQ(l.stats().acquisitions, 1001u);
    }
    EXPECT_EQ(l.stats().acquisitions, 1001u);
    EXPECT_EQ(l.stats().contentions, 0u);
}

TEST(Spinlock, TryLockCountsOnlySuccess) {
    spinlock l;
    ASSERT_TRUE(l.try_lock());
    EXPECT_TRUE(l.held_by_me());
    EXPECT_FALSE(l.try_lock()); // held (by us): fails, counts nothing
    bool other = true;
    std::thread t([&] { other = l.try_lock(); });
    t.join();
    EXPECT_FALSE(other);
    l.unlock();
    EXPECT_EQ(l.stats().acquisitions, 1u);
    EXPECT_EQ(l.stats().contentions, 0u);
    EXPECT_TRUE(l.try_lock());
    l.unlock();
    EXPECT_EQ(l.stats().acquisitions, 2u);
}

TEST(Spinlock, ResetStatsZeroesBoth) {
    spinlock l;
    l.lock();
    l.unlock();
    l.reset_stats();
    EXPECT_EQ(l.stats().acquisitions, 0u);
    EXPECT_EQ(l.stats().contentions, 0u);
}

TEST(Spinlock, LockStatsAdd) {
    vmap::lock_stats a{3, 1}, b{4, 2};
    a += b;
    EXPECT_EQ(a.acquisitions, 7u);
    EXPECT_EQ(a.contentions, 3u);
}

TEST(Spinlock, AWaiterOnAHeldLockCountsOneContention) {
    spinlock l;
    std::atomic<bool> released{false}, acquired{false};
    bool saw_release = false;
    g_spins.store(0);
    l.lock();
    std::thread waiter([&] {
        vmap::set_sched_hook(count_spins);
        l.lock();
        acquired.store(true);
        saw_release = released.load();
        l.unlock();
        vmap::set_sched_hook(nullptr);
    });
    // Until the waiter has found the lock held and spins (or wrongly got it).
    while (g_spins.load() == 0 && !acquired.load())
        std::this_thread::yield();
    EXPECT_FALSE(acquired.load());
    released.store(true);
    l.unlock();
    waiter.join();
    EXPECT_TRUE(saw_release) << "lock() returned while another thread held the lock";
    EXPECT_EQ(l.stats().acquisitions, 2u);
    EXPECT_EQ(l.stats().contentions, 1u);
}

TEST(Spinlock, MutualExclusionAndExactCountsUnderContention) {
    spinlock l;
    constexpr int threads = 4, iters = 5000;
    long counter = 0; // plain: TSan reports it if the lock does not exclude
    std::barrier start(threads);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            start.arrive_and_wait();
            for (int i = 0; i < iters; ++i) {
                std::lock_guard<spinlock> g(l);
                ++counter;
            }
        });
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(counter, long{threads} * iters);
    EXPECT_EQ(l.stats().acquisitions, std::uint64_t{threads} * iters);
    EXPECT_LE(l.stats().contentions, l.stats().acquisitions);
}

TEST(Spinlock, HeldByMeIsPerThread) {
    spinlock l;
    EXPECT_FALSE(l.held_by_me());
    l.lock();
    EXPECT_TRUE(l.held_by_me());
    l.assert_held("here"); // no effect when held
    bool other = true;
    std::thread t([&] { other = l.held_by_me(); });
    t.join();
    EXPECT_FALSE(other);
    l.unlock();
    EXPECT_FALSE(l.held_by_me());
}

TEST(SpinlockDeathTest, UnlockByANonOwnerIsFatal) {
    EXPECT_DEATH(
        {
            spinlock l("victim");
            l.lock();
            std::thread t([&] { l.unlock(); });
            t.join();
        },
        "vmap: BUG at .*spinlock\\.hpp:[0-9]+: .*unlock of victim not held by this thread");
}

TEST(SpinlockDeathTest, UnlockOfAFreeLockIsFatal) {
    EXPECT_DEATH(
        {
            spinlock l("idle");
            l.unlock();
        },
        "unlock of idle not held by this thread");
}

TEST(SpinlockDeathTest, AssertHeldByANonOwnerIsFatal) {
    EXPECT_DEATH(
        {
            spinlock l("other's");
            l.lock();
            std::thread t([&] { l.assert_held("checker"); });
            t.join();
        },
        "checker: other's is not held");
}

TEST(SpinlockDeathTest, AssertHeldOfAFreeLockIsFatal) {
    EXPECT_DEATH(
        {
            spinlock l("free");
            l.assert_held("checker");
        },
        "checker: free is not held");
}

} // namespace
