// SPDX-License-Identifier: MIT
// tests/test_cpu.cpp: vmap/cpu.hpp - cpu_mask, cpu_topology on sparse masks,
// per_cpu storage for possible CPUs only, cpu_binding and current_cpu().
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <vmap/cpu.hpp>

#include "test_support.hpp"

namespace {

using vmap::cpu_binding;
using vmap::cpu_mask;
using vmap::cpu_topology;
using vmap::per_cpu;

TEST(CpuMask, EmptyMask) {
    cpu_mask m;
    EXPECT_TRUE(m.empty());
    EXPECT_EQ(m.count(), 0u);
    EXPECT_EQ(m.limit(), 0u);
    EXPECT_TRUE(m.cpus().empty());
    EXPECT_EQ(m.to_string(), "{}");
    EXPECT_FALSE(m.test(0));
    EXPECT_FALSE(m.test(1000));
}

TEST(CpuMask, SetTestCountLimit) {
    cpu_mask m{0, 2, 5};
    EXPECT_FALSE(m.empty());
    EXPECT_EQ(m.count(), 3u);
    EXPECT_EQ(m.limit(), 6u);
    EXPECT_TRUE(m.test(0));
    EXPECT_FALSE(m.test(1));
    EXPECT_TRUE(m.test(2));
    EXPECT_FALSE(m.test(3));
    EXPECT_FALSE(m.test(4));
    EXPECT_TRUE(m.test(5));
    EXPECT_FALSE(m.test(6));
    EXPECT_EQ(m.cpus(), (std::vector<unsigned>{0, 2, 5}));
    EXPECT_EQ(m.to_string(), "{0,2,5}");
    m.set(2); // idempotent
    EXPECT_EQ(m.count(), 3u);
}

TEST(CpuMask, BeyondOneWord) {
    cpu_mask m{63, 64, 130};
    EXPECT_EQ(m.count(), 3u);
    EXPECT_EQ(m.limit(), 131u);
    EXPECT_TRUE(m.test(63));
    EXPECT_TRUE(m.test(64));
    EXPECT_TRUE(m.test(130));
    EXPECT_FALSE(m.test(129));
    EXPECT_FALSE(m.test(131));
    EXPECT_EQ(m.cpus(), (std::vector<unsigned>{63, 64, 130}));
}

TEST(CpuMask, FirstNAndFromBits) {
    EXPECT_EQ(cpu_mask::first_n(4).cpus(), (std::vector<unsigned>{0, 1, 2, 3}));
    EXPECT_TRUE(cpu_mask::first_n(0).empty());
    EXPECT_EQ(cpu_mask::from_bits(0b100101).cpus(), (std::vector<unsigned>{0, 2, 5}));
    EXPECT_EQ(cpu_mask::from_bits(1ULL << 63).cpus(), (std::vector<unsigned>{63}));
    EXPECT_TRUE(cpu_mask::from_bits(0).empty());
}

TEST(CpuTopology, SparseMask) {
    cpu_topology t(cpu_mask{0, 2, 5});
    EXPECT_EQ(t.nr_cpu_ids(), 6u);
    EXPECT_EQ(t.num_possible(), 3u);
    EXPECT_EQ(t.possible_cpus(), (std::vector<unsigned>{0, 2, 5}));
    EXPECT_TRUE(t.possible(0));
    EXPECT_FALSE(t.possible(1));
    EXPECT_TRUE(t.possible(2));
    EXPECT_FALSE(t.possible(6));
    // cpumask_next(): the first possible CPU above, or nr_cpu_ids.
    EXPECT_EQ(t.next_possible(0), 2u);
    EXPECT_EQ(t.next_possible(1), 2u);
    EXPECT_EQ(t.next_possible(2), 5u);
    EXPECT_EQ(t.next_possible(3), 5u);
    EXPECT_EQ(t.next_possible(4), 5u);
    EXPECT_EQ(t.next_possible(5), 6u);
    EXPECT_EQ(t.mask().to_string(), "{0,2,5}");
}

TEST(CpuTopology, MaskWithoutCpu0) {
    cpu_topology t(cpu_mask{3});
    EXPECT_EQ(t.nr_cpu_ids(), 4u);
    EXPECT_EQ(t.num_possible(), 1u);
    EXPECT_EQ(t.next_possible(0), 3u);
    EXPECT_EQ(t.next_possible(3), 4u);
}

TEST(CpuTopology, EmptyMaskIsRejected) {
    EXPECT_THROW(cpu_topology{cpu_mask{}}, std::invalid_argument);
}

struct counted {
    static inline int live = 0;
    int value;
    explicit counted(int v) : value(v) { ++live; }
    ~counted() { --live; }
};

TEST(PerCpu, StorageOnlyForPossibleCpus) {
    cpu_topology t(cpu_mask{0, 2, 5});
    {
        per_cpu<counted> pc(t, 7);
        EXPECT_EQ(counted::live, 3);
        for (unsigned c = 0; c < 8; ++c)
            EXPECT_EQ(pc.exists(c), c == 0 || c == 2 || c == 5) << "cpu " << c;
        EXPECT_EQ(pc[0].value, 7);
        pc[2].value = 20;
        pc[5].value = 50;
        EXPECT_EQ(pc[0].value, 7);
        EXPECT_EQ(pc[2].value, 20);
        EXPECT_EQ(pc[5].value, 50);
        EXPECT_NE(&pc[0], &pc[2]);
    }
    EXPECT_EQ(counted::live, 0);
}

TEST(PerCpuDeathTest, AccessToAnImpossibleCpuDiesNamingIt) {
    cpu_topology t(cpu_mask{0, 2, 5});
    per_cpu<int> pc(t);
    EXPECT_DEATH(pc[1] = 1, "vmap: BUG at .*per_cpu access to CPU 1, which is not a possible CPU "
                            "\\(nr_cpu_ids 6\\)");
    EXPECT_DEATH(pc[4] = 1, "per_cpu access to CPU 4, which is not a possible CPU");
    EXPECT_DEATH(pc[6] = 1, "per_cpu access to CPU 6, which is not a possible CPU");
}

TEST(CpuBinding, NestsAndRestores) {
    EXPECT_EQ(vmap::bound_cpu(), -1);
    {
        cpu_binding a(2);
        EXPECT_EQ(vmap::bound_cpu(), 2);
        {
            cpu_binding b(5);
            EXPECT_EQ(vmap::bound_cpu(), 5);
            {
                cpu_binding c(0);
                EXPECT_EQ(vmap::bound_cpu(), 0);
            }
            EXPECT_EQ(vmap::bound_cpu(), 5);
        }
        EXPECT_EQ(vmap::bound_cpu(), 2);
    }
    EXPECT_EQ(vmap::bound_cpu(), -1);
}

TEST(CpuBinding, IsPerThread) {
    cpu_binding a(2);
    int other = 0;
    std::thread t([&] { other = vmap::bound_cpu(); });
    t.join();
    EXPECT_EQ(other, -1);
    EXPECT_EQ(vmap::bound_cpu(), 2);
}

TEST(CurrentCpu, BoundThreadRunsOnItsCpu) {
    cpu_topology t(cpu_mask{0, 2, 5});
    for (unsigned c : {0u, 2u, 5u}) {
        cpu_binding b(c);
        EXPECT_EQ(vmap::current_cpu(t), c);
    }
}

TEST(CurrentCpu, UnboundThreadGetsAPossibleCpu) {
    for (const cpu_mask& m : {cpu_mask{0}, cpu_mask{0, 2, 5}, cpu_mask{3}, cpu_mask{1, 7}}) {
        cpu_topology t(m);
        for (int i = 0; i < 4; ++i)
            EXPECT_TRUE(t.possible(vmap::current_cpu(t))) << m.to_string();
    }
}

TEST(CurrentCpuDeathTest, ABindingToAnImpossibleCpuDies) {
    cpu_topology t(cpu_mask{0, 2, 5});
    EXPECT_DEATH(
        {
            cpu_binding b(1);
            (void)vmap::current_cpu(t);
        },
        "vmap: BUG at .*thread bound to CPU 1, which is not possible in \\{0,2,5\\}");
    EXPECT_DEATH(
        {
            cpu_binding b(6);
            (void)vmap::current_cpu(t);
        },
        "thread bound to CPU 6, which is not possible");
}

} // namespace
