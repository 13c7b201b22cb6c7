// SPDX-License-Identifier: MIT
// tests/test_tlb.cpp: the TLB log (vmap/tlb_log.hpp), the harness's TLB model
// that judges it (fuzz/harness/tlb.hpp), and every path of the allocator that
// returns address space, against the rule behind vmalloc's promise: a range
// becomes allocatable again only once every translation it had is flushed.
//
// The paths: free_vmap_block() reached from vb_free() (the last page of a
// block unmapped), from vm_unmap_aliases()' purge, from
// purge_fragmented_blocks() and from the purge on exhaustion inside
// alloc_vmap_area(); and the large path of vm_unmap_ram(). Each test drives
// one path, finds the release event of the range it returns, and replays the
// log: no page of a released range may be stale at its release. (The
// destructor returns nothing: the area allocator dies with it.)
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <vmap/vmap.hpp>

#include "alloc_support.hpp"
#include "harness/tlb.hpp"

namespace {

using vmap::flush_reason;
using vmap::range_kind;
using vmap::tlb_event;
using vmap::tlb_event_kind;
using vmap_test::mapper;

constexpr unsigned long page = 4096;

tlb_event ev(std::uint64_t stamp, tlb_event_kind k, unsigned long s, unsigned long e,
             range_kind r = range_kind::small, flush_reason why = flush_reason::none) {
    tlb_event x;
    x.stamp = stamp;
    x.kind = k;
    x.start = s;
    x.end = e;
    x.range = r;
    x.reason = why;
    return x;
}

// --- the TLB model -----------------------------------------------------------

TEST(TlbModel, HandingOutAnUnflushedPageIsAViolation) {
    harness::tlb_model t(page);
    EXPECT_EQ(t.apply(ev(1, tlb_event_kind::unmap, 0x10000, 0x12000)), "");
    std::string v = t.apply(ev(2, tlb_event_kind::hand_out, 0x11000, 0x13000));
    EXPECT_NE(v.find("stale TLB"), std::string::npos) << v;
    EXPECT_NE(v.find("0x11000"), std::string::npos) << "names the page: " << v;
    EXPECT_NE(v.find("at stamp 1"), std::string::npos) << "names its unmap: " << v;
}

TEST(TlbModel, AFlushBetweenUnmapAndHandOutMakesItSafe) {
    harness::tlb_model t(page);
    EXPECT_EQ(t.apply(ev(1, tlb_event_kind::unmap, 0x10000, 0x12000)), "");
    EXPECT_EQ(t.apply(ev(2, tlb_event_kind::flush, 0x0, 0x20000, range_kind::small,
                         flush_reason::unmap_aliases)),
              "");
    EXPECT_EQ(t.apply(ev(3, tlb_event_kind::hand_out, 0x10000, 0x12000)), "");
    EXPECT_EQ(t.stale_count(), 0u);
}

TEST(TlbModel, AFlushBeforeTheUnmapOrBesideItDoesNotCount) {
    harness::tlb_model t(page);
    EXPECT_EQ(t.apply(ev(1, tlb_event_kind::flush, 0x10000, 0x12000)), "");
    EXPECT_EQ(t.apply(ev(2, tlb_event_kind::unmap, 0x10000, 0x12000)), "");
    EXPECT_EQ(t.apply(ev(3, tlb_event_kind::flush, 0x10000, 0x11000)), ""); // first page only
    EXPECT_TRUE(t.stale(0x11000));
    EXPECT_NE(t.apply(ev(4, tlb_event_kind::hand_out, 0x11000, 0x12000)), "");
    EXPECT_EQ(t.apply(ev(5, tlb_event_kind::hand_out, 0x10000, 0x11000)), ""); // flushed one
}

TEST(TlbModel, AReportSaysWhenTheRangeWasReleased) {
    harness::tlb_model t(page);
    t.apply(ev(1, tlb_event_kind::unmap, 0x10000, 0x14000, range_kind::large));
    t.apply(ev(2, tlb_event_kind::release, 0x10000, 0x14000, range_kind::large));
    std::string v = t.apply(ev(3, tlb_event_kind::hand_out, 0x10000, 0x11000, range_kind::block));
    EXPECT_NE(v.find("returned to the free space by release large"), std::string::npos) << v;
    EXPECT_NE(t.describe().find("0x10000-0x14000"), std::string::npos) << t.describe();
}

// --- the log -----------------------------------------------------------------

// The model keeps runs of stale pages; a page-by-page replay (what it kept
// before issue 18) must agree with it on every page, every count and every
// hand-out's verdict and page, over random unaligned events.
TEST(TlbModel, RunsAgreeWithAPageByPageReplay) {
    std::mt19937_64 rng(18);
    for (int round = 0; round < 200; ++round) {
        harness::tlb_model t(page);
        std::map<unsigned long, std::uint64_t> ref; // stale page -> its unmap's stamp
        const unsigned long span = 64 * page;
        for (std::uint64_t stamp = 1; stamp < 200; ++stamp) {
            unsigned long a = rng() % span, b = a + rng() % (12 * page);
            auto kind = static_cast<tlb_event_kind>(rng() % 3); // unmap, flush, hand_out
            std::string v = t.apply(ev(stamp, kind, a, b));
            unsigned long first = a & ~(page - 1);
            auto lo = ref.lower_bound(first), hi = ref.lower_bound(b);
            if (kind == tlb_event_kind::unmap) {
                for (unsigned long p = first; p < b; p += page)
                    ref[p] = stamp;
            } else if (kind == tlb_event_kind::flush) {
                ref.erase(lo, hi);
            } else if (lo != hi) {
                ASSERT_NE(
                    v.find("hands out page " + vmap::vmap_area_allocator::hex(lo->first) + ","),
                    std::string::npos)
                    << v;
                ASSERT_NE(v.find("at stamp " + std::to_string(lo->second) + " "), std::string::npos)
                    << v;
            }
            if (kind == tlb_event_kind::hand_out && lo == hi) {
                ASSERT_EQ(v, "");
            }
            ASSERT_EQ(t.stale_count(), ref.size());
            for (unsigned long p = 0; p < span + 12 * page; p += page)
                ASSERT_EQ(t.stale(p), ref.count(p) != 0) << "page " << p << " after " << stamp;
        }
    }
}

TEST(TlbLog, MergesThreadsInStampOrderWithTheirTags) {
    vmap::tlb_log log;
    constexpr int per_thread = 1000;
    std::vector<std::thread> ts;
    for (unsigned tag = 0; tag < 3; ++tag)
        ts.emplace_back([&log, tag] {
            log.attach_this_thread(tag + 10);
            for (int i = 0; i < per_thread; ++i)
                log.unmap(range_kind::small, tag, tag + 1);
        });
    for (std::thread& t : ts)
        t.join();
    std::vector<tlb_event> all = log.take();
    ASSERT_EQ(all.size(), 3u * per_thread);
    for (std::size_t i = 1; i < all.size(); ++i)
        ASSERT_LT(all[i - 1].stamp, all[i].stamp);
    for (const tlb_event& e : all)
        ASSERT_EQ(e.thread, e.start + 10) << "an event carries its thread's tag";
    EXPECT_TRUE(log.take().empty());
}

TEST(TlbLog, RecordsNothingWhenOffButCountsFlushes) {
    vmap::tlb_log log(false);
    std::uint64_t before = log.now();
    log.flush(0, page, flush_reason::lazy_purge);
    log.hand_out(range_kind::large, 0, page);
    EXPECT_EQ(log.pending(), 0u);
    EXPECT_EQ(log.flushes(), 1u);
    EXPECT_EQ(log.now(), before) << "nothing is stamped while off";
}

// --- the allocator's paths ---------------------------------------------------

// A small range (8 blocks of 128 pages) on one CPU, so purges and
// exhaustion are easy to reach.
vmap::config small_config() {
    vmap::config c;
    c.possible = vmap::cpu_mask::first_n(1);
    c.bbmap_bits = 128;
    c.vmalloc_size = 8 * 128 * page;
    return c;
}

// The release events of `kind` in m's log, after replaying the whole log
// through the TLB model: each must find no page of its range stale.
std::vector<tlb_event> checked_releases(const mapper& m, range_kind kind) {
    harness::tlb_model t(page);
    std::vector<tlb_event> out;
    for (const tlb_event& e : m.events) {
        if (e.kind == tlb_event_kind::release) {
            EXPECT_FALSE(t.any_stale(e.start, e.end))
                << "released while stale: " << harness::tlb_model::describe(e) << "\n"
                << t.describe();
            if (e.range == kind)
                out.push_back(e);
        }
        EXPECT_EQ(t.apply(e), "");
    }
    return out;
}

TEST(TlbPaths, VbFreeOfTheLastPageFreesTheBlockLazily) {
    mapper m(small_config());
    std::vector<unsigned long> addrs;
    for (unsigned i = 0; i < 128 / 8; ++i) {
        vmap::map_result r = m.map(0, 8, 0);
        ASSERT_TRUE(r);
        addrs.push_back(r.addr);
    }
    for (unsigned long a : addrs)
        ASSERT_NO_FATAL_FAILURE(m.unmap(a));
    ASSERT_EQ(m.a->stats().blocks_freed, 1u);
    EXPECT_TRUE(checked_releases(m, range_kind::block).empty()) << "returned before any purge";
    m.a->vm_unmap_aliases();
    m.drain();
    EXPECT_EQ(checked_releases(m, range_kind::block).size(), 1u);
}

// A fragmented block: 64 pages used then unmapped, 64 free (>= the purge
// threshold of 32: only a forced purge takes it) or 96 used (free 32 - 1).
unsigned long fragment(mapper& m, unsigned used_pages) {
    std::vector<unsigned long> addrs;
    for (unsigned i = 0; i < used_pages; ++i) {
        vmap::map_result r = m.map(0, 1, 0);
        EXPECT_TRUE(r);
        addrs.push_back(r.addr);
    }
    for (unsigned long a : addrs)
        m.unmap(a);
    return addrs.front();
}

TEST(TlbPaths, UnmapAliasesPurgesAFragmentedBlockOnlyAfterFlushingIt) {
    mapper m(small_config());
    fragment(m, 100); // free 28 < VMAP_PURGE_THRESHOLD 32: vm_unmap_aliases purges it
    m.a->vm_unmap_aliases();
    m.drain();
    ASSERT_EQ(m.a->stats().blocks_purged, 1u);
    EXPECT_EQ(checked_releases(m, range_kind::block).size(), 1u);
}

TEST(TlbPaths, PurgeFragmentedBlocksFreesLazily) {
    mapper m(small_config());
    fragment(m, 64);
    m.a->purge_fragmented_blocks(0);
    m.drain();
    ASSERT_EQ(m.a->stats().blocks_purged, 1u);
    EXPECT_TRUE(checked_releases(m, range_kind::block).empty()) << "returned before any purge";
    m.a->vm_unmap_aliases();
    m.drain();
    EXPECT_EQ(checked_releases(m, range_kind::block).size(), 1u);
}

TEST(TlbPaths, ThePurgeOnExhaustionFlushesBeforeTheRetryHandsTheRangeOut) {
    mapper m(small_config());
    // One block fragmented (28 pages free: too few for 64), seven held by
    // live mappings: a large request fits only once the purge on exhaustion
    // frees the fragmented block.
    fragment(m, 100);
    for (unsigned i = 0; i < 14; ++i)
        ASSERT_TRUE(m.map(0, 64, 0));
    ASSERT_FALSE(m.a->areas().can_fit(100 * page, page));
    vmap::map_result big = m.map(0, 100, 0);
    ASSERT_TRUE(big) << vmap::to_string(big.err);
    ASSERT_GE(m.a->stats().blocks_purged, 1u);
    std::vector<tlb_event> rel = checked_releases(m, range_kind::block);
    ASSERT_FALSE(rel.empty()); // and checked_releases() judged every hand-out too
}

TEST(TlbPaths, TheLargeUnmapIsFlushedByALazyPurgeBeforeItsRangeIsFree) {
    mapper m(small_config());
    vmap::map_result r = m.map(0, 100, 0);
    ASSERT_TRUE(r);
    ASSERT_NO_FATAL_FAILURE(m.unmap(r.addr));
    EXPECT_EQ(m.a->stats().lazy_pages, 100);
    EXPECT_TRUE(checked_releases(m, range_kind::large).empty()) << "returned before any purge";
    m.a->vm_unmap_aliases();
    m.drain();
    std::vector<tlb_event> rel = checked_releases(m, range_kind::large);
    ASSERT_EQ(rel.size(), 1u);
    EXPECT_EQ(rel[0].start, r.addr);
    // Unmap, flush, release: in that order.
    std::vector<tlb_event_kind> order;
    for (const tlb_event& e : m.events)
        if (e.start == r.addr && e.kind != tlb_event_kind::hand_out)
            order.push_back(e.kind);
    EXPECT_EQ(order, (std::vector<tlb_event_kind>{tlb_event_kind::unmap, tlb_event_kind::flush,
                                                  tlb_event_kind::release}));
}

// Past lazy_max_pages() the drain work is scheduled; it runs when someone
// runs it (the work queue is an operation here) and purges everything lazy.
TEST(TlbPaths, TheDrainWorkIsScheduledPastLazyMaxPagesAndPurges) {
    vmap::config c = small_config();
    c.lazy_max_pages = 150;
    mapper m(c);
    vmap::map_result r1 = m.map(0, 100, 0), r2 = m.map(0, 100, 1);
    ASSERT_TRUE(r1 && r2);
    ASSERT_NO_FATAL_FAILURE(m.unmap(r1.addr));
    EXPECT_FALSE(m.a->drain_work_pending()) << "100 lazy pages are not past 150";
    EXPECT_FALSE(m.a->run_drain_work());
    ASSERT_NO_FATAL_FAILURE(m.unmap(r2.addr));
    EXPECT_TRUE(m.a->drain_work_pending());
    EXPECT_TRUE(checked_releases(m, range_kind::large).empty());
    EXPECT_TRUE(m.a->run_drain_work());
    EXPECT_FALSE(m.a->drain_work_pending());
    m.drain();
    EXPECT_EQ(checked_releases(m, range_kind::large).size(), 2u);
    EXPECT_EQ(m.a->stats().lazy_pages, 0);
    EXPECT_EQ(m.a->stats().drain_runs, 1u);
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

// With two nodes a purged area refills its node's pool, and node_alloc()
// hands it out again: only after the purge's flush covered it.
TEST(TlbPaths, APooledAreaIsHandedOutAgainOnlyAfterItsFlush) {
    vmap::config c = small_config();
    c.vmap_nodes = 2;
    mapper m(c);
    vmap::map_result r = m.map(0, 100, 0);
    ASSERT_TRUE(r);
    ASSERT_NO_FATAL_FAILURE(m.unmap(r.addr));
    m.a->vm_unmap_aliases();
    m.drain();
    EXPECT_EQ(m.a->stats().pooled_areas, 1u);
    EXPECT_EQ(m.a->vmap_node_shrink_count(), 1u);
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    vmap::map_result again = m.map(0, 100, 2);
    ASSERT_TRUE(again);
    EXPECT_EQ(again.addr, r.addr) << "the pool's area is reused first";
    EXPECT_EQ(m.a->stats().pooled_areas, 0u);
    checked_releases(m, range_kind::large); // judges the hand-out from the pool
    ASSERT_NO_FATAL_FAILURE(m.unmap(again.addr));
    m.a->vm_unmap_aliases();
    m.a->vmap_node_shrink_scan(); // memory pressure: the pools go back to the free tree
    m.drain();
    EXPECT_EQ(m.a->vmap_node_shrink_count(), 0u);
    EXPECT_EQ(m.a->stats().pooled_areas, 0u);
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

} // namespace
