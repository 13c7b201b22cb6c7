// SPDX-License-Identifier: MIT
// tests/test_vmap_area.cpp: vmap/vmap_area.hpp - page- and block-aligned
// allocation, placement, exhaustion, coalescing, find_unlink, with_area, and a
// random walk against a std::map model that predicts every placement.
#include <algorithm>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <vmap/vmap_area.hpp>

#include "test_support.hpp"

namespace {

using vmap::vmap_area;
using vmap::vmap_area_allocator;
using vmap::VMAP_BLOCK;
using vmap::VMAP_RAM;

constexpr unsigned long page = 4096;
constexpr unsigned long block = 16 * page;
// Not block aligned: the first aligned block starts 13 pages in.
constexpr unsigned long start = 0x40000000UL + 3 * page;
constexpr unsigned long blocks_in_range = 32;
constexpr unsigned long size = blocks_in_range * block;
constexpr unsigned long first_block = 0x40000000UL + block;

std::vector<std::string> audit(const vmap_area_allocator& a) {
    std::vector<std::string> out;
    a.audit(out);
    return out;
}

#define EXPECT_AUDIT_CLEAN(a)                                                                      \
    do {                                                                                           \
        std::vector<std::string> problems_ = audit(a);                                             \
        EXPECT_TRUE(problems_.empty()) << problems_.front();                                       \
    } while (0)

TEST(VmapArea, FreshAllocatorIsOneFreeRange) {
    vmap_area_allocator a(start, size, page, block);
    EXPECT_EQ(a.start(), start);
    EXPECT_EQ(a.end(), start + size);
    EXPECT_EQ(a.free_bytes(), size);
    EXPECT_EQ(a.busy_count(), 0u);
    EXPECT_EQ(a.next_busy(start), start + size);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, PageAlignedAllocation) {
    vmap_area_allocator a(start, size, page, block);
    std::byte p0, p1, p2;
    std::byte* pages[] = {&p0, &p1, &p2};
    vmap_area* va = a.alloc(3 * page, page, VMAP_RAM, pages);
    ASSERT_NE(va, nullptr);
    EXPECT_EQ(va->va_start, start);
    EXPECT_EQ(va->va_end, start + 3 * page);
    EXPECT_EQ(va->flags, VMAP_RAM);
    ASSERT_NE(va->pages, nullptr);
    EXPECT_EQ(va->pages[0].load(), &p0);
    EXPECT_EQ(va->pages[1].load(), &p1);
    EXPECT_EQ(va->pages[2].load(), &p2);
    vmap_area* vb = a.alloc(page, page, VMAP_RAM);
    ASSERT_NE(vb, nullptr);
    EXPECT_EQ(vb->va_start, start + 3 * page);
    EXPECT_EQ(vb->pages, nullptr);
    EXPECT_EQ(a.free_bytes(), size - 4 * page);
    EXPECT_EQ(a.busy_count(), 2u);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, RejectsBadRequests) {
    vmap_area_allocator a(start, size, page, block);
    EXPECT_EQ(a.alloc(0, page, VMAP_RAM), nullptr);
    EXPECT_EQ(a.alloc(page + 1, page, VMAP_RAM), nullptr);
    EXPECT_EQ(a.alloc(page, 2 * page, VMAP_RAM), nullptr);     // neither page nor block
    EXPECT_EQ(a.alloc(2 * block, block, VMAP_BLOCK), nullptr); // block alignment: one block
    EXPECT_EQ(a.alloc(page, block, VMAP_BLOCK), nullptr);
    EXPECT_EQ(a.free_bytes(), size);
    EXPECT_EQ(a.busy_count(), 0u);
}

TEST(VmapArea, BlocksGoToTheLowestAlignedAddress) {
    vmap_area_allocator a(start, size, page, block);
    vmap_area* b0 = a.alloc(block, block, VMAP_BLOCK);
    ASSERT_NE(b0, nullptr);
    EXPECT_EQ(b0->va_start, first_block);
    EXPECT_EQ(b0->va_end, first_block + block);
    vmap_area* b1 = a.alloc(block, block, VMAP_BLOCK);
    vmap_area* b2 = a.alloc(block, block, VMAP_BLOCK);
    ASSERT_TRUE(b1 && b2);
    EXPECT_EQ(b1->va_start, first_block + block);
    EXPECT_EQ(b2->va_start, first_block + 2 * block);
    // The unaligned head (13 pages) is left for page-sized requests: best fit.
    vmap_area* small = a.alloc(5 * page, page, VMAP_RAM);
    ASSERT_NE(small, nullptr);
    EXPECT_EQ(small->va_start, start);
    // A hole left by a freed block is reused before anything higher.
    a.free(b1);
    vmap_area* again = a.alloc(block, block, VMAP_BLOCK);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->va_start, first_block + block);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, BlockNeedsAnAlignedFit) {
    vmap_area_allocator a(start, size, page, block);
    // Occupy all but an unaligned gap of exactly one block's size.
    vmap_area* head = a.alloc(13 * page + 4 * page, page, VMAP_RAM); // up to block 0 + 4 pages
    ASSERT_NE(head, nullptr);
    vmap_area* gap_filler = a.alloc(size - head->va_end + start, page, VMAP_RAM);
    ASSERT_NE(gap_filler, nullptr);
    EXPECT_EQ(a.free_bytes(), 0u);
    a.free(gap_filler);
    vmap_area* rest = a.alloc(block, page, VMAP_RAM); // unaligned block-sized hole
    ASSERT_NE(rest, nullptr);
    EXPECT_EQ(rest->va_start, head->va_end);
    vmap_area* tail = a.alloc(start + size - rest->va_end, page, VMAP_RAM);
    ASSERT_NE(tail, nullptr);
    a.free(rest);
    // A block-sized free range that is not aligned cannot hold a block.
    EXPECT_EQ(a.free_bytes(), block);
    EXPECT_EQ(a.alloc(block, block, VMAP_BLOCK), nullptr);
    EXPECT_NE(a.alloc(block, page, VMAP_RAM), nullptr);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, ExhaustionReturnsNull) {
    vmap_area_allocator a(start, size, page, block);
    unsigned long got = 0;
    while (vmap_area* va = a.alloc(block, block, VMAP_BLOCK)) {
        EXPECT_EQ(va->va_start % block, 0u);
        ++got;
    }
    // The unaligned head and tail hold 13 + 3 pages: one block fewer.
    EXPECT_EQ(got, blocks_in_range - 1);
    EXPECT_EQ(a.free_bytes(), block);
    EXPECT_EQ(a.alloc(14 * page, page, VMAP_RAM), nullptr); // largest hole: 13 pages
    vmap_area* head = a.alloc(13 * page, page, VMAP_RAM);
    ASSERT_NE(head, nullptr);
    EXPECT_EQ(head->va_start, start);
    vmap_area* tail = a.alloc(3 * page, page, VMAP_RAM);
    ASSERT_NE(tail, nullptr);
    EXPECT_EQ(tail->va_end, start + size);
    EXPECT_EQ(a.free_bytes(), 0u);
    EXPECT_EQ(a.alloc(page, page, VMAP_RAM), nullptr);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, FreeingEverythingCoalescesToOneRange) {
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0101);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    std::mt19937_64 rng(seed);
    vmap_area_allocator a(start, size, page, block);
    std::vector<vmap_area*> live;
    for (int i = 0; i < 200; ++i) {
        vmap_area* va = rng() % 3 == 0 ? a.alloc(block, block, VMAP_BLOCK)
                                       : a.alloc((1 + rng() % 20) * page, page, VMAP_RAM);
        if (va)
            live.push_back(va);
    }
    ASSERT_GT(live.size(), 10u);
    std::shuffle(live.begin(), live.end(), rng);
    for (vmap_area* va : live)
        a.free(va);
    EXPECT_EQ(a.busy_count(), 0u);
    EXPECT_EQ(a.free_bytes(), size);
    EXPECT_AUDIT_CLEAN(a);
    // One free range: the whole range fits in one request.
    vmap_area* all = a.alloc(size, page, VMAP_RAM);
    ASSERT_NE(all, nullptr);
    EXPECT_EQ(all->va_start, start);
}

TEST(VmapArea, FindUnlinkChecksSizeAndFlags) {
    vmap_area_allocator a(start, size, page, block);
    vmap_area* ram = a.alloc(4 * page, page, VMAP_RAM);
    vmap_area* blk = a.alloc(block, block, VMAP_BLOCK);
    ASSERT_TRUE(ram && blk);
    const unsigned long ram_start = ram->va_start, blk_start = blk->va_start;
    bool wrong = true;

    EXPECT_EQ(a.find_unlink(ram_start, VMAP_RAM, 5 * page, &wrong), nullptr);
    EXPECT_TRUE(wrong);
    EXPECT_EQ(a.find_unlink(ram_start, VMAP_BLOCK, 4 * page, &wrong), nullptr);
    EXPECT_FALSE(wrong);
    EXPECT_EQ(a.find_unlink(ram_start + page, VMAP_RAM, 4 * page, &wrong), nullptr);
    EXPECT_FALSE(wrong);
    EXPECT_EQ(a.find_unlink(blk_start, VMAP_RAM, block, &wrong), nullptr); // a block is no RAM
    EXPECT_FALSE(wrong);
    EXPECT_EQ(a.busy_count(), 2u);
    EXPECT_EQ(a.free_bytes(), size - 4 * page - block);

    std::unique_ptr<vmap_area> got = a.find_unlink(ram_start, VMAP_RAM, 4 * page, &wrong);
    ASSERT_NE(got, nullptr);
    EXPECT_FALSE(wrong);
    EXPECT_EQ(got->va_start, ram_start);
    EXPECT_EQ(a.busy_count(), 1u);
    // Unlinked, not free: the caller flushes first, then returns the range.
    EXPECT_EQ(a.free_bytes(), size - 4 * page - block);
    EXPECT_EQ(a.find_unlink(ram_start, VMAP_RAM, 4 * page, &wrong), nullptr); // gone
    EXPECT_AUDIT_CLEAN(a);
    a.reclaim(std::move(got));
    EXPECT_EQ(a.free_bytes(), size - block);
    EXPECT_AUDIT_CLEAN(a);
}

TEST(VmapArea, WithAreaFindsTheContainingBusyArea) {
    vmap_area_allocator a(start, size, page, block);
    vmap_area* x = a.alloc(2 * page, page, VMAP_RAM);
    vmap_area* y = a.alloc(3 * page, page, VMAP_RAM);
    ASSERT_TRUE(x && y);
    auto find = [&](unsigned long addr) {
        return a.with_area(addr, [](vmap_area* v) { return v; });
    };
    EXPECT_EQ(find(x->va_start), x);
    EXPECT_EQ(find(x->va_start + page + 17), x);
    EXPECT_EQ(find(x->va_end - 1), x);
    EXPECT_EQ(find(x->va_end), y); // adjacent
    EXPECT_EQ(find(y->va_end - 1), y);
    EXPECT_EQ(find(y->va_end), nullptr); // free space
    EXPECT_EQ(find(start - 1), nullptr);
    EXPECT_EQ(find(start + size), nullptr);
    EXPECT_EQ(find(0), nullptr);
    EXPECT_EQ(a.next_busy(start), x->va_start);
    EXPECT_EQ(a.next_busy(x->va_start + 1), y->va_start);
    EXPECT_EQ(a.next_busy(y->va_start + 1), start + size);
}

TEST(VmapAreaDeathTest, FreeOfAnUnknownAreaIsFatal) {
    vmap_area_allocator a(start, size, page, block);
    vmap_area fake;
    fake.va_start = start;
    fake.va_end = start + page;
    EXPECT_DEATH(a.free(&fake), "unlink of an unknown vmap_area");
}

// The model: busy areas by start. Its gaps predict every placement.
struct model_area {
    unsigned long end;
    unsigned flags;
    vmap_area* va;
};
using model_t = std::map<unsigned long, model_area>;

std::vector<std::pair<unsigned long, unsigned long>> gaps(const model_t& m) {
    std::vector<std::pair<unsigned long, unsigned long>> g;
    unsigned long at = start;
    for (auto& [s, a] : m) {
        if (s > at)
            g.emplace_back(at, s);
        at = a.end;
    }
    if (at < start + size)
        g.emplace_back(at, start + size);
    return g;
}

// Best fit: the smallest gap that holds `bytes`, the lowest of equal ones.
std::optional<unsigned long> predict_page_fit(const model_t& m, unsigned long bytes) {
    std::optional<std::pair<unsigned long, unsigned long>> best; // (len, start)
    for (auto& [s, e] : gaps(m))
        if (e - s >= bytes && (!best || std::make_pair(e - s, s) < *best))
            best = std::make_pair(e - s, s);
    if (!best)
        return std::nullopt;
    return best->second;
}

// Lowest aligned block that fits in a gap.
std::optional<unsigned long> predict_block_fit(const model_t& m) {
    for (auto& [s, e] : gaps(m)) {
        unsigned long at = (s + block - 1) / block * block;
        if (at + block <= e)
            return at;
    }
    return std::nullopt;
}

TEST(VmapArea, RandomWalkAgainstAModel) {
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0102);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    std::mt19937_64 rng(seed);
    vmap_area_allocator a(start, size, page, block);
    model_t m;
    for (int step = 0; step < 3000; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        unsigned op = static_cast<unsigned>(rng() % 10);
        if (op < 3) {
            unsigned long bytes = (1 + rng() % (rng() % 4 == 0 ? 40 : 6)) * page;
            std::optional<unsigned long> want = predict_page_fit(m, bytes);
            vmap_area* va = a.alloc(bytes, page, VMAP_RAM);
            ASSERT_EQ(va != nullptr, want.has_value()) << bytes << " bytes";
            if (va) {
                ASSERT_EQ(va->va_start, *want);
                ASSERT_EQ(va->va_end, *want + bytes);
                m[va->va_start] = {va->va_end, VMAP_RAM, va};
            }
        } else if (op < 5) {
            std::optional<unsigned long> want = predict_block_fit(m);
            vmap_area* va = a.alloc(block, block, VMAP_BLOCK);
            ASSERT_EQ(va != nullptr, want.has_value());
            if (va) {
                ASSERT_EQ(va->va_start, *want);
                m[va->va_start] = {va->va_end, VMAP_BLOCK, va};
            }
        } else if (op < 8 && !m.empty()) {
            auto it = m.begin();
            std::advance(it, static_cast<long>(rng() % m.size()));
            if (it->second.flags == VMAP_RAM && rng() % 2) {
                bool wrong = false;
                unsigned long len = it->second.end - it->first;
                bool right_size = rng() % 4 != 0;
                auto got =
                    a.find_unlink(it->first, VMAP_RAM, right_size ? len : len + page, &wrong);
                ASSERT_EQ(got != nullptr, right_size);
                ASSERT_EQ(wrong, !right_size);
                if (got) {
                    a.reclaim(std::move(got));
                    m.erase(it);
                }
            } else {
                a.free(it->second.va);
                m.erase(it);
            }
        } else {
            unsigned long addr = start - page + rng() % (size + 2 * page);
            auto it = m.upper_bound(addr);
            vmap_area* want = nullptr;
            if (it != m.begin() && addr < std::prev(it)->second.end)
                want = std::prev(it)->second.va;
            ASSERT_EQ(a.with_area(addr, [](vmap_area* v) { return v; }), want);
        }
        unsigned long busy = 0;
        for (auto& [s, x] : m)
            busy += x.end - s;
        ASSERT_EQ(a.free_bytes(), size - busy);
        ASSERT_EQ(a.busy_count(), m.size());
        if (step % 16 == 0) {
            std::vector<unsigned long> seen;
            a.for_each_busy([&](const vmap_area& v) { seen.push_back(v.va_start); });
            std::vector<unsigned long> want;
            for (auto& [s, x] : m)
                want.push_back(s);
            ASSERT_EQ(seen, want);
        }
        std::vector<std::string> problems = audit(a);
        ASSERT_TRUE(problems.empty()) << problems.front();
    }
}

} // namespace
