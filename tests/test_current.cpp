// SPDX-License-Identifier: MIT
// tests/test_current.cpp: vmap::task (vmap/current.hpp), the one execution
// context the library reads per thread. Switching tasks on one OS thread
// must switch everything the library keeps per thread (the deterministic
// scheduler's fibers rely on it), and an OS thread that never switches keeps
// its own.
#include <gtest/gtest.h>

#include <thread>

#include <vmap/vmap.hpp>

namespace {

// Runs f with `t` switched in on this OS thread, then switches back.
template <class F>
void as(vmap::task* t, F&& f) {
    vmap::task* prev = vmap::switch_to(t);
    f();
    vmap::switch_to(prev);
}

TEST(Current, EachOsThreadHasItsOwnTask) {
    vmap::task* mine = &vmap::current();
    vmap::task* other = nullptr;
    std::thread([&] { other = &vmap::current(); }).join();
    EXPECT_NE(mine, other);
    EXPECT_TRUE(vmap::is_thread_task(*mine));
}

TEST(Current, SwitchToMakesATaskCurrentAndBack) {
    vmap::owned_task t;
    vmap::task* own = &vmap::current();
    as(&t, [&] {
        EXPECT_EQ(&vmap::current(), &t);
        EXPECT_FALSE(vmap::is_thread_task(vmap::current()));
    });
    EXPECT_EQ(&vmap::current(), own);
}

TEST(Current, IdsAreDistinctAndStable) {
    vmap::owned_task a, b;
    std::uint64_t ia = a.id();
    EXPECT_NE(ia, 0u);
    EXPECT_NE(ia, b.id());
    EXPECT_EQ(ia, a.id());
}

TEST(Current, TheBoundCpuFollowsTheTask) {
    vmap::owned_task t;
    vmap::cpu_binding here(3);
    as(&t, [] {
        EXPECT_EQ(vmap::bound_cpu(), -1);
        vmap::cpu_binding there(5);
        EXPECT_EQ(vmap::bound_cpu(), 5);
    });
    EXPECT_EQ(vmap::bound_cpu(), 3);
}

TEST(Current, ASpinlockIsHeldByTheTaskThatTookIt) {
    vmap::spinlock l("test");
    vmap::owned_task t;
    l.lock();
    EXPECT_TRUE(l.held_by_me());
    as(&t, [&] { EXPECT_FALSE(l.held_by_me()); });
    l.unlock();
    as(&t, [&] {
        l.lock();
        EXPECT_TRUE(l.held_by_me());
    });
    EXPECT_FALSE(l.held_by_me());
    as(&t, [&] { l.unlock(); });
}

TEST(Current, RcuReadSectionsArePerTask) {
    vmap::owned_task t;
    vmap::rcu::read_lock();
    EXPECT_TRUE(vmap::rcu::in_reader());
    as(&t, [] { EXPECT_FALSE(vmap::rcu::in_reader()); });
    vmap::rcu::read_unlock();
    as(&t, [] {
        vmap::rcu::read_lock();
        EXPECT_TRUE(vmap::rcu::in_reader());
    });
    EXPECT_FALSE(vmap::rcu::in_reader());
    as(&t, [] { vmap::rcu::read_unlock(); });
}

// A task inside a read-side section holds up a grace period even while it
// is switched out, as a preempted reader does.
TEST(Current, ASwitchedOutReaderHoldsUpACallback) {
    static bool ran = false;
    struct obj {
        vmap::rcu::head h;
    };
    vmap::owned_task t;
    as(&t, [] { vmap::rcu::read_lock(); });
    auto* o = new obj;
    ran = false;
    vmap::rcu::call(&o->h, [](vmap::rcu::head* h) {
        ran = true;
        delete reinterpret_cast<obj*>(h);
    });
    vmap::rcu::poll();
    EXPECT_FALSE(ran);
    as(&t, [] { vmap::rcu::read_unlock(); });
    vmap::rcu::poll();
    EXPECT_TRUE(ran);
}

TEST(CurrentDeathTest, AnOwnedTaskThatEndsInsideASectionIsAFatalBug) {
    EXPECT_DEATH(
        {
            vmap::owned_task t;
            as(&t, [] { vmap::rcu::read_lock(); });
        },
        "task exits inside an RCU read-side section");
}

TEST(Current, TheSchedHookFollowsTheTask) {
    static int calls = 0;
    vmap::owned_task t;
    as(&t, [] { vmap::set_sched_hook([](vmap::sched_kind, const void*) { ++calls; }); });
    EXPECT_EQ(vmap::sched_hook(), nullptr);
    as(&t, [] { EXPECT_NE(vmap::sched_hook(), nullptr); });
}

} // namespace
