// SPDX-License-Identifier: MIT
// tests/test_rcu.cpp: vmap/rcu.hpp - read-side nesting, call() deferral,
// synchronize(), barrier(), poll batching (the default of 64 and a batch of
// 1, as the fuzz harness sets), poisoning of reclaimed objects, and the fatal
// misuses.
//
// This test compiles the (header-only) library with its scheduling points on,
// so it can see, without sleeping, the moment synchronize() starts to wait for
// a reader: the hook runs only on the threads that install it.
#undef VMAP_SCHED_HOOKS
#define VMAP_SCHED_HOOKS 1

#include <atomic>
#include <barrier>
#include <chrono>
#include <latch>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include <vmap/rcu.hpp>

#include "test_support.hpp"

namespace {

namespace rcu = vmap::rcu;

// An object reclaimed through rcu::call().
struct tracked : rcu::head {
    std::atomic<int> runs{0};
    std::atomic<bool>* reader_left = nullptr; // the reader that must be gone first
    bool reader_had_left = false;
};

void note_run(rcu::head* h) {
    auto* t = static_cast<tracked*>(h);
    if (t->reader_left)
        t->reader_had_left = t->reader_left->load();
    t->runs.fetch_add(1);
}

// Set by a thread's hook when synchronize() finds a reader it must wait for.
std::atomic<bool> g_rcu_waiting{false};
void on_sched_point(vmap::sched_kind kind, const void*) {
    if (kind == vmap::sched_kind::rcu_wait)
        g_rcu_waiting.store(true);
}

// Spins (yielding) until pred() holds or ten seconds pass; a broken library
// must fail these tests, not hang them.
template <class Pred>
bool wait_until(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::yield();
    }
    return true;
}

class Rcu : public testing::Test {
  protected:
    void SetUp() override {
        rcu::set_poll_batch(rcu::default_poll_batch);
        rcu::barrier();
        ASSERT_EQ(rcu::pending_callbacks(), 0u);
        ASSERT_FALSE(rcu::in_reader());
        g_rcu_waiting.store(false);
    }
    void TearDown() override {
        rcu::barrier();
        EXPECT_EQ(rcu::pending_callbacks(), 0u);
        rcu::set_poll_batch(rcu::default_poll_batch);
    }
};

TEST_F(Rcu, ReadLockNestsAndInReaderFollowsTheOutermostSection) {
    EXPECT_FALSE(rcu::in_reader());
    rcu::read_lock();
    EXPECT_TRUE(rcu::in_reader());
    rcu::read_lock();
    {
        rcu::read_guard g;
        EXPECT_TRUE(rcu::in_reader());
    }
    EXPECT_TRUE(rcu::in_reader());
    rcu::read_unlock();
    EXPECT_TRUE(rcu::in_reader());
    rcu::read_unlock();
    EXPECT_FALSE(rcu::in_reader());
}

TEST_F(Rcu, InReaderIsPerThread) {
    rcu::read_guard g;
    bool other = true;
    std::thread t([&] { other = rcu::in_reader(); });
    t.join();
    EXPECT_FALSE(other);
    EXPECT_TRUE(rcu::in_reader());
}

TEST_F(Rcu, OwnNestedSectionHoldsOffACallbackUntilTheOutermostUnlock) {
    tracked obj;
    rcu::read_lock();
    rcu::read_lock();
    rcu::call(&obj, note_run);
    EXPECT_EQ(rcu::pending_callbacks(), 1u);
    rcu::poll();
    EXPECT_EQ(obj.runs.load(), 0);
    rcu::read_unlock();
    rcu::poll();
    EXPECT_EQ(obj.runs.load(), 0) << "ran while the outer section was still open";
    rcu::read_unlock();
    rcu::poll();
    EXPECT_EQ(obj.runs.load(), 1);
    EXPECT_EQ(rcu::pending_callbacks(), 0u);
}

TEST_F(Rcu, CallDefersUntilAnEarlierReaderOnAnotherThreadLeaves) {
    tracked obj;
    std::atomic<bool> left{false};
    obj.reader_left = &left;
    std::barrier sync(2);
    std::thread reader([&] {
        rcu::read_lock();
        sync.arrive_and_wait(); // 1: inside
        sync.arrive_and_wait(); // 2: the main thread polled while we were inside
        left.store(true);
        rcu::read_unlock();
        sync.arrive_and_wait(); // 3: gone
    });
    sync.arrive_and_wait(); // 1
    rcu::call(&obj, note_run);
    for (int i = 0; i < 100; ++i)
        rcu::poll();
    EXPECT_EQ(obj.runs.load(), 0) << "callback ran inside a reader that predates it";
    EXPECT_EQ(rcu::pending_callbacks(), 1u);
    sync.arrive_and_wait(); // 2
    sync.arrive_and_wait(); // 3
    rcu::poll();
    EXPECT_EQ(obj.runs.load(), 1);
    EXPECT_TRUE(obj.reader_had_left);
    reader.join();
}

TEST_F(Rcu, AReaderThatEntersAfterCallDoesNotHoldItUp) {
    tracked obj;
    rcu::call(&obj, note_run);
    std::barrier sync(2);
    std::thread reader([&] {
        rcu::read_guard g;
        sync.arrive_and_wait(); // 1: inside, after the call
        sync.arrive_and_wait(); // 2
    });
    sync.arrive_and_wait(); // 1
    rcu::poll();
    EXPECT_EQ(obj.runs.load(), 1);
    sync.arrive_and_wait(); // 2
    reader.join();
}

TEST_F(Rcu, SynchronizeWaitsForAPreexistingReader) {
    std::atomic<bool> left{false}, returned{false};
    bool left_when_returned = false;
    std::barrier sync(2);
    std::thread reader([&] {
        rcu::read_lock();
        sync.arrive_and_wait(); // 1: inside
        sync.arrive_and_wait(); // 2: synchronize() is waiting for us (or failed to)
        left.store(true);
        rcu::read_unlock();
    });
    sync.arrive_and_wait(); // 1
    std::thread syncer([&] {
        vmap::set_sched_hook(on_sched_point);
        rcu::synchronize();
        vmap::set_sched_hook(nullptr);
        left_when_returned = left.load();
        returned.store(true);
    });
    wait_until([&] { return g_rcu_waiting.load() || returned.load(); });
    EXPECT_TRUE(g_rcu_waiting.load()) << "synchronize() never waited";
    EXPECT_FALSE(returned.load()) << "synchronize() returned with the reader still inside";
    sync.arrive_and_wait(); // 2
    syncer.join();
    reader.join();
    EXPECT_TRUE(left_when_returned);
}

TEST_F(Rcu, SynchronizeWithoutReadersReturns) {
    rcu::synchronize();
    rcu::synchronize();
    SUCCEED();
}

TEST_F(Rcu, BarrierWaitsForAReaderAndRunsTheCallbacks) {
    tracked obj;
    std::atomic<bool> left{false};
    obj.reader_left = &left;
    std::barrier sync(2);
    std::thread reader([&] {
        rcu::read_lock();
        sync.arrive_and_wait(); // 1
        sync.arrive_and_wait(); // 2
        left.store(true);
        rcu::read_unlock();
    });
    sync.arrive_and_wait(); // 1
    rcu::call(&obj, note_run);
    std::atomic<bool> returned{false};
    std::thread waiter([&] {
        vmap::set_sched_hook(on_sched_point);
        rcu::barrier();
        vmap::set_sched_hook(nullptr);
        returned.store(true);
    });
    EXPECT_TRUE(wait_until([&] { return g_rcu_waiting.load() || returned.load(); }))
        << "barrier() neither waited nor returned";
    EXPECT_FALSE(returned.load());
    EXPECT_EQ(obj.runs.load(), 0);
    sync.arrive_and_wait(); // 2
    waiter.join();
    reader.join();
    EXPECT_EQ(obj.runs.load(), 1);
    EXPECT_TRUE(obj.reader_had_left);
}

// A callback that queues another one, as a freed object that frees its child.
struct parent_obj : rcu::head {
    tracked child;
    std::atomic<int> runs{0};
};
void parent_run(rcu::head* h) {
    auto* p = static_cast<parent_obj*>(h);
    p->runs.fetch_add(1);
    rcu::call(&p->child, note_run);
}

TEST_F(Rcu, BarrierRunsEverythingIncludingCallbacksQueuedByCallbacks) {
    std::vector<std::unique_ptr<tracked>> objs;
    for (int i = 0; i < 10; ++i) {
        objs.push_back(std::make_unique<tracked>());
        rcu::call(objs.back().get(), note_run);
    }
    parent_obj parent;
    rcu::call(&parent, parent_run);
    EXPECT_EQ(rcu::pending_callbacks(), 11u);
    rcu::barrier();
    EXPECT_EQ(rcu::pending_callbacks(), 0u);
    for (auto& o : objs)
        EXPECT_EQ(o->runs.load(), 1);
    EXPECT_EQ(parent.runs.load(), 1);
    EXPECT_EQ(parent.child.runs.load(), 1);
}

TEST_F(Rcu, CallPollsByItselfOnceABatchIsPending) {
    std::vector<std::unique_ptr<tracked>> objs;
    EXPECT_EQ(rcu::poll_batch(), 64u);
    for (std::size_t i = 0; i + 1 < rcu::poll_batch(); ++i) {
        objs.push_back(std::make_unique<tracked>());
        rcu::call(objs.back().get(), note_run);
    }
    EXPECT_EQ(rcu::pending_callbacks(), rcu::poll_batch() - 1);
    for (auto& o : objs)
        EXPECT_EQ(o->runs.load(), 0);
    objs.push_back(std::make_unique<tracked>());
    rcu::call(objs.back().get(), note_run); // the batch is full: call() polls
    EXPECT_EQ(rcu::pending_callbacks(), 0u);
    for (auto& o : objs)
        EXPECT_EQ(o->runs.load(), 1);
}

TEST_F(Rcu, ABatchOfOneRunsACallbackAtCallTimeWhenNoReaderHoldsItUp) {
    rcu::set_poll_batch(1);
    EXPECT_EQ(rcu::poll_batch(), 1u);
    tracked a;
    rcu::call(&a, note_run);
    EXPECT_EQ(a.runs.load(), 1);
    EXPECT_EQ(rcu::pending_callbacks(), 0u);
    rcu::set_poll_batch(0); // counts as 1
    EXPECT_EQ(rcu::poll_batch(), 1u);
}

TEST_F(Rcu, ABatchOfOneStillWaitsForAReaderOnAnotherThread) {
    rcu::set_poll_batch(1);
    std::atomic<bool> inside{false}, leave{false}, left{false};
    std::thread reader([&] {
        rcu::read_lock();
        inside.store(true);
        while (!leave.load())
            std::this_thread::yield();
        left.store(true);
        rcu::read_unlock();
    });
    ASSERT_TRUE(wait_until([&] { return inside.load(); }));
    tracked a;
    a.reader_left = &left;
    rcu::call(&a, note_run); // polls, but the reader holds it up
    EXPECT_EQ(a.runs.load(), 0);
    EXPECT_EQ(rcu::pending_callbacks(), 1u);
    rcu::poll();
    EXPECT_EQ(a.runs.load(), 0);
    leave.store(true);
    reader.join();
    rcu::poll(); // the grace period has ended: anyone's poll runs it
    EXPECT_EQ(a.runs.load(), 1);
    EXPECT_TRUE(a.reader_had_left);
}

TEST_F(Rcu, ACallbackQueuedInsideOurOwnSectionWaitsForItsEndWithABatchOfOne) {
    rcu::set_poll_batch(1);
    tracked a;
    {
        rcu::read_guard g;
        rcu::call(&a, note_run);
        EXPECT_EQ(a.runs.load(), 0);
        rcu::poll();
        EXPECT_EQ(a.runs.load(), 0);
    }
    rcu::poll();
    EXPECT_EQ(a.runs.load(), 1);
}

TEST_F(Rcu, PoisonDestroysAndFillsWithPoisonFree) {
    static int destroyed = 0;
    struct victim : rcu::head {
        std::uint64_t word = 0x1122334455667788ULL;
        unsigned char bytes[13] = {1, 2, 3};
        ~victim() { ++destroyed; }
    };
    alignas(victim) unsigned char storage[sizeof(victim)];
    auto* v = new (storage) victim;
    rcu::poison(v);
    EXPECT_EQ(destroyed, 1);
    for (unsigned char b : storage)
        EXPECT_EQ(b, rcu::poison_free);
}

TEST_F(Rcu, FreePoisonedReclaimsThroughACallback) {
    static int destroyed = 0;
    struct victim : rcu::head {
        ~victim() { ++destroyed; }
    };
    rcu::set_poll_batch(1);
    rcu::call(new victim, [](rcu::head* h) { rcu::free_poisoned(static_cast<victim*>(h)); });
    EXPECT_EQ(destroyed, 1); // and ASan/LSan see it freed, not leaked
}

TEST_F(Rcu, CallbacksRunInCallOrder) {
    static std::vector<int>* order;
    struct numbered : rcu::head {
        int n = 0;
    };
    std::vector<int> seen;
    order = &seen;
    std::vector<numbered> objs(5);
    for (int i = 0; i < 5; ++i) {
        objs[static_cast<std::size_t>(i)].n = i;
        rcu::call(&objs[static_cast<std::size_t>(i)],
                  [](rcu::head* h) { order->push_back(static_cast<numbered*>(h)->n); });
    }
    rcu::barrier();
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
}

// Regression: poll() and barrier() used the oldest reader seen by a scan as the
// limit, also for callbacks queued after the scan. A reader that the scan saw
// outside could enter, queue a callback inside its section (call_rcu while
// still using the object) and have it run before it left. Here one thread does
// exactly that in a loop while another polls; idle registered readers, asleep,
// make each scan long, which widens the window the bug needed. With the fix no
// callback can run early. Without it the window is hit by chance only (when the
// polling thread is preempted inside it): this test failed 9 runs of 10 on a
// heavily loaded 2-core machine and 4 of 40 at moderate load (ASan build), so
// it is a probabilistic guard; the reasoning is in rcu.hpp's safe_epoch().
// Bounded by a round count and a deadline.
TEST_F(Rcu, PollNeverRunsACallbackQueuedInsideAStillOpenSection) {
    constexpr int rounds = 200000;
    constexpr int idle_readers = 128;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::vector<tracked> objs(rounds);
    std::atomic<bool> stop{false};
    std::atomic<int> early{0};
    int done_rounds = 0;

    std::barrier ready(idle_readers + 3);
    std::latch idle_done(1);
    std::vector<std::thread> threads;
    // The section owner registers first, so each scan reads its counter first.
    threads.emplace_back([&] {
        rcu::register_thread();
        ready.arrive_and_wait();
        for (int i = 0; i < rounds && early.load(std::memory_order_relaxed) == 0; ++i) {
            if (i % 1024 == 0 && std::chrono::steady_clock::now() > deadline)
                break;
            tracked& o = objs[static_cast<std::size_t>(i)];
            rcu::read_lock();
            rcu::call(&o, note_run);
            for (int k = 0; k < 64; ++k)
                if (o.runs.load() != 0) {
                    early.fetch_add(1);
                    break;
                }
            rcu::read_unlock();
            ++done_rounds;
        }
        stop.store(true);
    });
    for (int i = 0; i < idle_readers; ++i)
        threads.emplace_back([&] {
            rcu::register_thread();
            ready.arrive_and_wait();
            idle_done.wait(); // registered, outside any section, asleep
        });
    threads.emplace_back([&] {
        ready.arrive_and_wait();
        while (!stop.load())
            rcu::poll();
    });
    ready.arrive_and_wait();
    threads.front().join();
    idle_done.count_down();
    for (auto& t : threads)
        if (t.joinable())
            t.join();
    rcu::barrier(); // before objs goes away
    EXPECT_EQ(early.load(), 0) << "a callback ran inside the section that queued it (round "
                               << done_rounds << ")";
    EXPECT_GT(done_rounds, 1000);
}

using RcuDeathTest = Rcu;

TEST_F(RcuDeathTest, SynchronizeInsideAReaderIsAFatalBug) {
    EXPECT_DEATH(
        {
            rcu::read_lock();
            rcu::synchronize();
        },
        "vmap: BUG at .*rcu\\.hpp:[0-9]+: .*rcu::synchronize inside a read-side section");
}

TEST_F(RcuDeathTest, BarrierInsideAReaderIsAFatalBug) {
    EXPECT_DEATH(
        {
            tracked obj;
            rcu::read_guard g;
            rcu::call(&obj, note_run);
            rcu::barrier();
        },
        "rcu::synchronize inside a read-side section");
}

TEST_F(RcuDeathTest, UnlockWithoutLockIsAFatalBug) {
    EXPECT_DEATH(rcu::read_unlock(), "rcu::read_unlock without read_lock");
}

TEST_F(RcuDeathTest, AThreadThatExitsInsideASectionIsAFatalBug) {
    EXPECT_DEATH(
        {
            std::thread t([] { rcu::read_lock(); });
            t.join();
        },
        "thread exits inside an RCU read-side section");
}

} // namespace
