// SPDX-License-Identifier: MIT
// tests/test_audit.cpp: allocator::check() (vmap/audit.hpp) catches what it
// claims. Each case breaks one invariant of a healthy allocator by hand, the
// way a bug would, and expects the sentence that names it; then puts the
// state back and expects check() to be empty again, so each sentence is
// known to fire for its own corruption and to stay quiet otherwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <vmap/vmap.hpp>

namespace {

// Two CPUs, 128-page blocks, the full range: a block per CPU with a few
// mappings in each, so both free lists are non-empty.
struct healthy {
    vmap::allocator a;
    std::vector<std::byte> page;
    unsigned long first = 0, second = 0; // a 2-page and a 1-page mapping on CPU 0
    vmap::vmap_block* vb = nullptr;      // the block serving them

    static vmap::config cfg() {
        vmap::config c;
        c.possible = vmap::cpu_mask::first_n(2);
        c.bbmap_bits = 128;
        return c;
    }

    healthy() : a(cfg()), page(a.page_size()) {
        first = map(0, 2);
        second = map(0, 1);
        map(1, 4);
        vb = a.find_block(first);
    }
    ~healthy() {
        // Leave nothing the destructor would trip over.
        EXPECT_TRUE(a.check().empty());
    }

    unsigned long map(unsigned cpu, unsigned n) {
        vmap::cpu_binding on(cpu);
        std::vector<std::byte*> pages(n, page.data());
        vmap::map_result r = a.vm_map_ram(pages);
        EXPECT_TRUE(r) << vmap::to_string(r.err);
        return r.addr;
    }
};

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v)
        s += x + "\n";
    return s;
}

// Breaks the state, expects a report containing `sentence`, repairs it and
// expects a clean audit.
void expect_caught(healthy& h, const std::function<void()>& breaks,
                   const std::function<void()>& repairs, const std::string& sentence) {
    ASSERT_TRUE(h.a.check().empty()) << joined(h.a.check());
    breaks();
    std::vector<std::string> found = h.a.check();
    EXPECT_TRUE(
        std::any_of(found.begin(), found.end(),
                    [&](const std::string& s) { return s.find(sentence) != std::string::npos; }))
        << "expected \"" << sentence << "\", got:\n"
        << joined(found);
    repairs();
    EXPECT_TRUE(h.a.check().empty()) << joined(h.a.check());
}

TEST(Audit, AHealthyAllocatorHasNothingToReport) {
    healthy h;
    EXPECT_TRUE(h.a.check().empty()) << joined(h.a.check());
    ASSERT_NE(h.vb, nullptr);
    EXPECT_EQ(h.vb->free.load(), 128u - 2 - 1);
}

TEST(Audit, PageCountsThatDoNotAddUp) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->free.fetch_add(1); }, [&] { h.vb->free.fetch_sub(1); },
        "+ used 3 != 128 pages");
}

TEST(Audit, AUsedPageInTheFreeTail) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->used_map.set(127, 1); }, [&] { h.vb->used_map.clear(127, 1); },
        "a used page lies in the free tail");
}

TEST(Audit, ADirtyRangeBeyondTheHandedOutPages) {
    healthy h;
    expect_caught(
        h,
        [&] {
            h.vb->dirty_min = 0;
            h.vb->dirty_max = 100;
        },
        [&] {
            h.vb->dirty_min = 128;
            h.vb->dirty_max = 0;
        },
        "is outside the handed-out pages");
}

TEST(Audit, AFullyDirtyBlockLeftInTheXarray) {
    healthy h;
    expect_caught(
        h,
        [&] {
            h.vb->free.store(0);
            h.vb->dirty.store(128);
        },
        [&] {
            h.vb->free.store(125);
            h.vb->dirty.store(0);
        },
        "fully dirty but still in the xarray");
}

TEST(Audit, AnAllocationRecordWithoutItsUsedBits) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->alloc_order[100] = 1; }, [&] { h.vb->alloc_order[100] = 0; },
        "allocation at page 100 is not fully marked used");
}

TEST(Audit, APageMappedWhereNothingIsUsed) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->pages[100].store(h.page.data()); }, [&] { h.vb->pages[100].store(nullptr); },
        "page 100 is mapped but not used");
}

TEST(Audit, ABlockOnTheFreeListOfAnotherQueue) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->cpu = 1; }, [&] { h.vb->cpu = 0; }, "belongs to queue 1");
}

TEST(Audit, ABlockOfAnImpossibleCpu) {
    healthy h;
    expect_caught(
        h, [&] { h.vb->cpu = 7; }, [&] { h.vb->cpu = 0; }, "vb->cpu 7 is not a possible CPU");
}

TEST(Audit, ABlockWithFreePagesOnNoFreeList) {
    healthy h;
    vmap::vmap_block_queue& q = h.a.queue(0);
    expect_caught(
        h,
        [&] {
            std::lock_guard<vmap::spinlock> g(q.lock);
            vmap::list_del_rcu(h.vb->free_list);
        },
        [&] {
            std::lock_guard<vmap::spinlock> g(q.lock);
            vmap::list_add_tail_rcu(h.vb->free_list, q.free);
        },
        "has free pages but is on no free list");
}

TEST(Audit, AListedBlockWithoutFreePages) {
    healthy h;
    expect_caught(
        h,
        [&] {
            h.vb->free.store(0);
            h.vb->dirty.store(125);
        },
        [&] {
            h.vb->free.store(125);
            h.vb->dirty.store(0);
        },
        "has no free pages but is listed");
}

TEST(Audit, AFreeListNodeWhosePrevDoesNotPointBack) {
    healthy h;
    vmap::rcu_list_node* saved = h.vb->free_list.prev;
    expect_caught(
        h, [&] { h.vb->free_list.prev = &h.vb->free_list; }, [&] { h.vb->free_list.prev = saved; },
        "a node's prev does not point back at its predecessor");
}

// Where h.vb is stored: its own xarray and key, as the allocator put it.
struct slot {
    vmap::xarray<vmap::vmap_block>* xa;
    std::uint64_t key;
};

slot own_slot(healthy& h) {
    unsigned long start = h.vb->va->va_start;
    return {&h.a.addr_to_vb_xa(start), h.a.addr_to_vb_idx(start)};
}

// Moves h.vb from one xarray slot to another, as a wrong key or hash would
// have stored it.
void move_block(healthy& h, slot from, slot to) {
    ASSERT_EQ(from.xa->erase(from.key), h.vb);
    ASSERT_EQ(to.xa->insert(to.key, h.vb), vmap::xa_insert_result::ok);
}

TEST(Audit, ABlockAtTheWrongKey) {
    healthy h;
    slot own = own_slot(h), wrong = {own.xa, own.key + 2};
    expect_caught(
        h, [&] { move_block(h, own, wrong); }, [&] { move_block(h, wrong, own); },
        "is stored at key " + std::to_string(wrong.key));
}

TEST(Audit, ABlockInTheXarrayOfAnotherQueue) {
    healthy h;
    unsigned q = h.a.addr_to_vb_cpu(h.vb->va->va_start);
    slot own = own_slot(h), wrong = {&h.a.queue(1 - q).vmap_blocks, own.key};
    expect_caught(
        h, [&] { move_block(h, own, wrong); }, [&] { move_block(h, wrong, own); },
        "but its address hashes to queue " + std::to_string(q));
}

TEST(Audit, ABlockAreaWhoseBlockLeftTheXarrays) {
    healthy h;
    slot own = own_slot(h);
    expect_caught(
        h, [&] { ASSERT_EQ(own.xa->erase(own.key), h.vb); },
        [&] { ASSERT_EQ(own.xa->insert(own.key, h.vb), vmap::xa_insert_result::ok); },
        "has no block in the xarrays (leaked)");
}

} // namespace
