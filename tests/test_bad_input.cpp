// SPDX-License-Identifier: MIT
// tests/test_bad_input.cpp: every row of the misuse table in allocator.hpp's
// header comment, and config validation.
//
// Under bug_policy::report each misuse must give its documented errc, count
// its BUG or WARN at the documented site, and change nothing: every other
// mapping reads back the same, check() stays empty, no block or flush appears,
// and every mapping can still be unmapped. Under the default bug_policy::abort
// the BUG rows are fatal with their message (death tests).
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include <vmap/vmap.hpp>

#include "alloc_support.hpp"

namespace {

using vmap::bug_policy;
using vmap::errc;
using vmap::vb_key;
using vmap::vb_scheme;
using vmap::warn_policy;
using vmap_test::mapper;

// One pointer per page of `mem`, which holds `count` pages of `page` bytes.
std::vector<std::byte*> page_pointers(std::vector<std::byte>& mem, unsigned count,
                                      unsigned long page) {
    std::vector<std::byte*> pages;
    for (unsigned i = 0; i < count; ++i)
        pages.push_back(&mem[i * page]);
    return pages;
}

constexpr unsigned long P = 4096;

struct misuse_param {
    const char* name;
    vmap::cpu_mask mask;
    vb_scheme scheme;
    vb_key key;
};

void PrintTo(const misuse_param& p, std::ostream* os) {
    *os << p.name;
}

class BadInput : public testing::TestWithParam<misuse_param> {
  protected:
    void SetUp() override {
        vmap::config c;
        c.possible = GetParam().mask;
        c.scheme = GetParam().scheme;
        c.key = GetParam().key;
        c.bbmap_bits = 128;
        c.on_bug = bug_policy::report;
        m_ = std::make_unique<mapper>(c);
        // A spread of live mappings: several orders on every CPU, and large ones.
        std::size_t first = 0;
        for (unsigned cpu : GetParam().mask.cpus())
            for (std::size_t n : {1, 2, 3, 4, 8, 64}) {
                ASSERT_TRUE(m_->map(cpu, n, first));
                first += n;
            }
        ASSERT_TRUE(m_->map(GetParam().mask.cpus().front(), 100, 7));
        ASSERT_TRUE(m_->map(GetParam().mask.cpus().back(), 65, 50));
        // Some unmapped pages, not yet flushed.
        std::vector<unsigned long> gone;
        for (std::size_t n : {4, 1})
            gone.push_back(m_->map(GetParam().mask.cpus().back(), n, 3).addr);
        for (unsigned long a : gone)
            ASSERT_NO_FATAL_FAILURE(m_->unmap(a));
        ASSERT_NO_FATAL_FAILURE(m_->expect_check_clean());
    }

    mapper& m() { return *m_; }
    vmap::allocator& a() { return *m_->a; }

    // The address of a live mapping of `n` pages.
    unsigned long live_of(std::size_t n) {
        for (auto& [addr, mp] : m().live)
            if (mp.pages.size() == n)
                return addr;
        ADD_FAILURE() << "no live mapping of " << n << " pages";
        return 0;
    }

    // Runs one misuse and checks: its result, which counter moved by one at
    // which site, and that nothing else changed.
    enum class kind { bug, warn };
    template <class F>
    void expect_misuse(const char* what, F&& misuse, errc want, kind k, const char* site_expr) {
        SCOPED_TRACE(what);
        const unsigned long bugs = a().diag().bug_count(), warns = a().diag().warn_hits();
        const unsigned long site_hits = a().diag().find(site_expr).hits;
        const vmap::allocator_stats before = a().stats();
        const std::vector<unsigned long> blocks = m().blocks();
        const std::size_t events_before = a().tlb().pending();
        ASSERT_NO_FATAL_FAILURE(m().expect_all_intact());

        errc got = misuse();

        EXPECT_EQ(got, want) << vmap::to_string(got) << " instead of " << vmap::to_string(want);
        EXPECT_EQ(a().diag().bug_count(), bugs + (k == kind::bug ? 1 : 0));
        EXPECT_EQ(a().diag().warn_hits(), warns + (k == kind::warn ? 1 : 0));
        vmap::site_record r = a().diag().find(site_expr);
        EXPECT_NE(r.site, nullptr) << "no site " << site_expr;
        EXPECT_EQ(r.hits, site_hits + 1) << "site " << site_expr;
        if (r.site) {
            EXPECT_NE(std::string(r.site->file).find("lib/vmap/"), std::string::npos);
        }
        const vmap::allocator_stats after = a().stats();
        EXPECT_EQ(after.blocks_live, before.blocks_live);
        EXPECT_EQ(after.blocks_created, before.blocks_created);
        EXPECT_EQ(after.blocks_freed, before.blocks_freed);
        EXPECT_EQ(after.flushes, before.flushes);
        EXPECT_EQ(a().tlb().pending(), events_before);
        EXPECT_EQ(m().blocks(), blocks);
        ASSERT_NO_FATAL_FAILURE(m().expect_all_intact());
        ASSERT_NO_FATAL_FAILURE(m().expect_check_clean());
    }

    void TearDown() override {
        if (!m_ || HasFatalFailure())
            return;
        // Everything can still be unmapped normally, and all is flushed.
        const unsigned long bugs = a().diag().bug_count(), warns = a().diag().warn_hits();
        ASSERT_NO_FATAL_FAILURE(m().unmap_all());
        ASSERT_NO_FATAL_FAILURE(m().unmap_aliases());
        ASSERT_NO_FATAL_FAILURE(m().expect_check_clean());
        EXPECT_EQ(a().diag().bug_count(), bugs);
        EXPECT_EQ(a().diag().warn_hits(), warns);
    }

    std::unique_ptr<mapper> m_;
};

// --- vm_map_ram -------------------------------------------------------------

TEST_P(BadInput, MapOfNoPagesWarnsOnceAndFailsWithInvalidCount) {
    std::vector<std::byte*> none;
    for (int i = 0; i < 2; ++i)
        expect_misuse(
            "0 pages", [&] { return a().vm_map_ram(none).err; }, errc::invalid_count, kind::warn,
            "size == 0");
    EXPECT_EQ(a().diag().find("size == 0").fired, 1u) << "WARN_ON_ONCE fired twice";
    EXPECT_EQ(a().vm_map_ram(none).addr, 0u);
}

TEST_P(BadInput, MapWithANullPageWarnsOnceAndFailsWithInvalidPage) {
    std::vector<std::byte*> small = m().pool.span(0, 5), large = m().pool.span(0, 90);
    small[3] = nullptr;
    large[89] = nullptr;
    expect_misuse(
        "null page, small", [&] { return a().vm_map_ram(small).err; }, errc::invalid_page,
        kind::warn, "p == nullptr");
    expect_misuse(
        "null page, large", [&] { return a().vm_map_ram(large).err; }, errc::invalid_page,
        kind::warn, "p == nullptr");
    std::vector<std::byte*> only_null(1, nullptr);
    expect_misuse(
        "only a null page", [&] { return a().vm_map_ram(only_null).err; }, errc::invalid_page,
        kind::warn, "p == nullptr");
    EXPECT_EQ(a().diag().find("p == nullptr").fired, 1u);
}

TEST_P(BadInput, MapOfAnExhaustedRangeFailsWithNoSpace) {
    // Its own range of two blocks, both full of live mappings.
    vmap::config c = a().cfg();
    c.vmalloc_size = 2 * 128 * P;
    mapper small(c);
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(small.map(GetParam().mask.cpus().front(), 64, 0));
    ASSERT_EQ(small.blocks().size(), 2u);
    const vmap::allocator_stats before = small.a->stats();
    for (unsigned cpu : GetParam().mask.cpus())
        for (std::size_t n : {1, 64, 65, 200}) {
            vmap::map_result r = small.map(cpu, n, 0);
            EXPECT_EQ(r.err, errc::no_space) << n << " pages on CPU " << cpu;
            EXPECT_EQ(r.addr, 0u);
        }
    std::vector<std::byte*> too_many(2 * 128 + 1, small.pool[0]);
    vmap::cpu_binding b(GetParam().mask.cpus().front());
    EXPECT_EQ(small.a->vm_map_ram(too_many).err, errc::no_space);
    const vmap::allocator_stats after = small.a->stats();
    EXPECT_EQ(after.blocks_created, before.blocks_created);
    EXPECT_EQ(after.blocks_purged, before.blocks_purged);
    EXPECT_EQ(after.flushes, before.flushes);
    EXPECT_EQ(small.a->diag().warn_hits(), 0u);
    EXPECT_EQ(small.a->diag().bug_count(), 0u);
    ASSERT_NO_FATAL_FAILURE(small.expect_all_intact());
    ASSERT_NO_FATAL_FAILURE(small.expect_check_clean());
}

// --- vm_unmap_ram: address checks (BUG) ---------------------------------------

TEST_P(BadInput, UnmapOfABadAddressIsABugWithBadAddress) {
    const unsigned long start = a().vmalloc_start(), end = a().vmalloc_end();
    const unsigned long small = live_of(2), large = live_of(100);
    struct row {
        const char* what;
        unsigned long addr;
        unsigned count;
    };
    for (const row& r :
         {row{"address 0", 0, 1}, row{"address 0, large count", 0, 100},
          row{"below the range", start - P, 1}, row{"just below the range", start - 1, 1},
          row{"the range's end", end, 1}, row{"far above", ~0UL & ~(P - 1), 1},
          row{"not page aligned (small)", small + 8, 2},
          row{"not page aligned (large)", large + 1, 100},
          row{"not aligned, count 0", small + 1, 0}})
        expect_misuse(
            r.what, [&] { return a().vm_unmap_ram(r.addr, r.count); }, errc::bad_address, kind::bug,
            "addr == 0");
}

TEST_P(BadInput, UnmapOfZeroPagesWarnsOnceWithInvalidCount) {
    const unsigned long small = live_of(1), large = live_of(100);
    expect_misuse(
        "count 0 at a small mapping", [&] { return a().vm_unmap_ram(small, 0); },
        errc::invalid_count, kind::warn, "count == 0");
    expect_misuse(
        "count 0 at a large mapping", [&] { return a().vm_unmap_ram(large, 0); },
        errc::invalid_count, kind::warn, "count == 0");
    EXPECT_EQ(a().diag().find("count == 0").fired, 1u);
}

// --- vm_unmap_ram: small counts (BUG) -------------------------------------------

TEST_P(BadInput, SmallUnmapWhereNoBlockIsIsABugWithNotMapped) {
    const unsigned long large = live_of(100);
    const unsigned long nowhere = a().vmalloc_start() + 1000 * a().block_size();
    expect_misuse(
        "no block at all", [&] { return a().vm_unmap_ram(nowhere, 1); }, errc::not_mapped,
        kind::bug, "!vb");
    expect_misuse(
        "small count at a large mapping", [&] { return a().vm_unmap_ram(large, 4); },
        errc::not_mapped, kind::bug, "!vb");
    expect_misuse(
        "last page of the range", [&] { return a().vm_unmap_ram(a().vmalloc_end() - P, 64); },
        errc::not_mapped, kind::bug, "!vb");
}

TEST_P(BadInput, SmallUnmapNotAtTheStartOfALiveMappingIsABugWithNotMapped) {
    const unsigned long four = live_of(4), eight = live_of(8);
    expect_misuse(
        "interior page of a 4-page mapping", [&] { return a().vm_unmap_ram(four + P, 1); },
        errc::not_mapped, kind::bug, "rec == 0");
    expect_misuse(
        "interior, right count", [&] { return a().vm_unmap_ram(eight + 4 * P, 4); },
        errc::not_mapped, kind::bug, "rec == 0");
    // The free tail of a block that has one: pages never handed out.
    unsigned long tail = 0;
    for (unsigned long b : m().blocks()) {
        vmap::vmap_block* vb = a().find_block(b);
        if (vb && vb->free.load() > 0) {
            tail = b + (a().bbmap_bits() - 1) * P;
            break;
        }
    }
    ASSERT_NE(tail, 0u);
    expect_misuse(
        "never handed out", [&] { return a().vm_unmap_ram(tail, 1); }, errc::not_mapped, kind::bug,
        "rec == 0");
    // A double unmap, while the block lives on.
    const unsigned long one = live_of(1);
    ASSERT_NO_FATAL_FAILURE(m().unmap(one));
    ASSERT_NE(a().find_block(one), nullptr);
    expect_misuse(
        "double unmap", [&] { return a().vm_unmap_ram(one, 1); }, errc::not_mapped, kind::bug,
        "rec == 0");
}

TEST_P(BadInput, DoubleUnmapAfterTheBlockWasFreedIsABugWithNotMapped) {
    // A block of its own, filled and emptied: freed.
    unsigned cpu = GetParam().mask.cpus().front();
    std::vector<unsigned long> addrs;
    for (int i = 0; i < 4; ++i) {
        vmap::map_result r = m().map(cpu, 64, 0);
        ASSERT_TRUE(r);
        addrs.push_back(r.addr);
    }
    unsigned long victim = addrs.back();
    std::uint64_t freed = a().stats().blocks_freed;
    for (unsigned long x : addrs)
        if ((x ^ victim) < a().block_size() && x != victim) {
            ASSERT_NO_FATAL_FAILURE(m().unmap(x));
        }
    ASSERT_NO_FATAL_FAILURE(m().unmap(victim));
    ASSERT_EQ(a().find_block(victim), nullptr);
    ASSERT_EQ(a().stats().blocks_freed, freed + 1);
    expect_misuse(
        "double unmap of a freed block", [&] { return a().vm_unmap_ram(victim, 64); },
        errc::not_mapped, kind::bug, "!vb");
}

TEST_P(BadInput, SmallUnmapOfAnotherOrderIsABugWithWrongCount) {
    const unsigned long four = live_of(4), one = live_of(1), sixty_four = live_of(64);
    expect_misuse(
        "4-page mapping, count 1", [&] { return a().vm_unmap_ram(four, 1); }, errc::wrong_count,
        kind::bug, "rec != order + 1");
    expect_misuse(
        "4-page mapping, count 5", [&] { return a().vm_unmap_ram(four, 5); }, errc::wrong_count,
        kind::bug, "rec != order + 1");
    expect_misuse(
        "1-page mapping, count 2", [&] { return a().vm_unmap_ram(one, 2); }, errc::wrong_count,
        kind::bug, "rec != order + 1");
    expect_misuse(
        "64-page mapping, count 32", [&] { return a().vm_unmap_ram(sixty_four, 32); },
        errc::wrong_count, kind::bug, "rec != order + 1");
    // Same order is the same request, as the kernel rounds up: 3 unmaps 4.
    const unsigned long bugs = a().diag().bug_count();
    auto it = m().live.find(four);
    ASSERT_TRUE(it != m().live.end());
    it->second.pages.resize(3); // the model now calls it a 3-page mapping
    ASSERT_NO_FATAL_FAILURE(m().unmap(four));
    EXPECT_EQ(a().diag().bug_count(), bugs);
}

// --- vm_unmap_ram: large counts (WARN) ------------------------------------------

TEST_P(BadInput, LargeUnmapWhereNoLargeMappingStartsWarnsWithNotMapped) {
    const unsigned long large = live_of(100), small = live_of(64);
    const unsigned long nowhere = a().vmalloc_start() + 1000 * a().block_size();
    expect_misuse(
        "interior of a large mapping", [&] { return a().vm_unmap_ram(large + P, 99); },
        errc::not_mapped, kind::warn, "!va");
    expect_misuse(
        "large count at a block mapping", [&] { return a().vm_unmap_ram(small, 65); },
        errc::not_mapped, kind::warn, "!va");
    expect_misuse(
        "large count in free space", [&] { return a().vm_unmap_ram(nowhere, 65); },
        errc::not_mapped, kind::warn, "!va");
    EXPECT_EQ(a().diag().find("!va").fired, 1u);
    // The double unmap of a large mapping.
    ASSERT_NO_FATAL_FAILURE(m().unmap(large));
    expect_misuse(
        "double unmap, large", [&] { return a().vm_unmap_ram(large, 100); }, errc::not_mapped,
        kind::warn, "!va");
}

TEST_P(BadInput, LargeUnmapOfAnotherSizeWarnsWithWrongCount) {
    const unsigned long hundred = live_of(100), sixty_five = live_of(65);
    expect_misuse(
        "100 pages, count 65", [&] { return a().vm_unmap_ram(hundred, 65); }, errc::wrong_count,
        kind::warn, "wrong_size");
    expect_misuse(
        "100 pages, count 101", [&] { return a().vm_unmap_ram(hundred, 101); }, errc::wrong_count,
        kind::warn, "wrong_size");
    expect_misuse(
        "65 pages, count 100", [&] { return a().vm_unmap_ram(sixty_five, 100); }, errc::wrong_count,
        kind::warn, "wrong_size");
    EXPECT_EQ(a().diag().find("wrong_size").fired, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, BadInput,
    testing::Values(misuse_param{"cpu0_hashed", vmap::cpu_mask{0}, vb_scheme::per_cpu_hashed,
                                 vb_key::block_index},
                    misuse_param{"cpu025_hashed", vmap::cpu_mask{0, 2, 5},
                                 vb_scheme::per_cpu_hashed, vb_key::block_index},
                    misuse_param{"first4_global_va_start", vmap::cpu_mask::first_n(4),
                                 vb_scheme::global, vb_key::va_start}),
    [](const testing::TestParamInfo<misuse_param>& i) { return std::string(i.param.name); });

// --- the default policy: BUG is fatal -------------------------------------------

class BadInputDeathTest : public testing::Test {
  protected:
    void SetUp() override {
        vmap::config c;
        c.possible = vmap::cpu_mask{0, 2, 5};
        c.bbmap_bits = 128;
        m_ = std::make_unique<mapper>(c);
        ASSERT_EQ(m_->a->cfg().on_bug, bug_policy::abort); // the default
        four_ = m_->map(2, 4, 0).addr;
        large_ = m_->map(5, 70, 0).addr;
        ASSERT_NE(four_, 0u);
        ASSERT_NE(large_, 0u);
    }
    std::unique_ptr<mapper> m_;
    unsigned long four_ = 0, large_ = 0;
};

const char* const bug_at = "vmap: BUG at .*lib/vmap/[a-z_]+\\.hpp:[0-9]+: ";

TEST_F(BadInputDeathTest, BadAddressesAreFatal) {
    vmap::allocator& a = *m_->a;
    EXPECT_DEATH(a.vm_unmap_ram(0, 1), std::string(bug_at) + ".*vm_unmap_ram: bad address 0\n");
    EXPECT_DEATH(
        a.vm_unmap_ram(a.vmalloc_start() - P, 1),
        "vm_unmap_ram: bad address " +
            vmap_test::regex_escape(vmap::vmap_area_allocator::hex(a.vmalloc_start() - P)));
    EXPECT_DEATH(a.vm_unmap_ram(a.vmalloc_end(), 1), "vm_unmap_ram: bad address 0x");
    EXPECT_DEATH(a.vm_unmap_ram(four_ + 1, 4),
                 "vm_unmap_ram: bad address " +
                     vmap_test::regex_escape(vmap::vmap_area_allocator::hex(four_ + 1)));
}

TEST_F(BadInputDeathTest, SmallUnmapMisusesAreFatal) {
    vmap::allocator& a = *m_->a;
    const std::string four = vmap::vmap_area_allocator::hex(four_);
    EXPECT_DEATH(a.vm_unmap_ram(a.vmalloc_start() + 900 * a.block_size(), 1),
                 std::string(bug_at) + "!vb: vm_unmap_ram: no vmap_block maps 0x");
    EXPECT_DEATH(a.vm_unmap_ram(large_, 2),
                 "vm_unmap_ram: no vmap_block maps " + vmap::vmap_area_allocator::hex(large_));
    EXPECT_DEATH(a.vm_unmap_ram(four_ + P, 1),
                 std::string(bug_at) + "rec == 0: vm_unmap_ram: 0x[0-9a-f]+ is not the start of "
                                       "a live mapping \\(double unmap\\?\\)");
    EXPECT_DEATH(a.vm_unmap_ram(four_, 2), std::string(bug_at) +
                                               "rec != order \\+ 1: vm_unmap_ram: " + four +
                                               " maps 4 pages, not 2");
    EXPECT_DEATH(
        {
            a.vm_unmap_ram(four_, 4);
            a.vm_unmap_ram(four_, 4);
        },
        four + " is not the start of a live mapping \\(double unmap\\?\\)");
}

TEST_F(BadInputDeathTest, WarningsAreNotFatalByDefault) {
    vmap::allocator& a = *m_->a;
    testing::internal::CaptureStderr();
    EXPECT_EQ(a.vm_unmap_ram(large_, 71), errc::wrong_count);
    EXPECT_EQ(a.vm_unmap_ram(four_, 0), errc::invalid_count);
    EXPECT_EQ(a.vm_map_ram({}).err, errc::invalid_count);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("vmap: WARNING at "), std::string::npos);
    EXPECT_EQ(a.diag().warn_hits(), 3u);
}

TEST_F(BadInputDeathTest, WarningsAreFatalUnderWarnPolicyAbort) {
    vmap::config c = m_->a->cfg();
    c.on_warn = warn_policy::abort;
    vmap::allocator a(c);
    EXPECT_DEATH(a.vm_map_ram({}),
                 "vmap: WARNING at .*lib/vmap/[a-z_]+\\.hpp:[0-9]+: .*vb_alloc of 0 bytes");
    EXPECT_DEATH(a.vm_unmap_ram(a.vmalloc_start(), 0), "vm_unmap_ram of 0 pages");
}

// --- config validation --------------------------------------------------------

TEST(ConfigValidation, RejectsBadConfigurations) {
    auto rejects = [](auto change, const char* what) {
        vmap::config c;
        c.possible = vmap::cpu_mask{0, 1};
        change(c);
        EXPECT_THROW(vmap::allocator{c}, std::invalid_argument) << what;
    };
    rejects([](vmap::config& c) { c.bbmap_bits = 100; }, "bbmap_bits not a power of two");
    rejects([](vmap::config& c) { c.bbmap_bits = 64; }, "bbmap_bits < 2 * max_alloc");
    rejects([](vmap::config& c) { c.bbmap_bits = 1u << 17; }, "bbmap_bits > 65536");
    rejects([](vmap::config& c) { c.bbmap_bits = 3; }, "bbmap_bits 3");
    rejects([](vmap::config& c) { c.max_alloc = 0; }, "max_alloc 0");
    rejects([](vmap::config& c) { c.max_alloc = 48; }, "max_alloc not a power of two");
    rejects([](vmap::config& c) { c.max_alloc = 2048; }, "max_alloc > 1024");
    rejects([](vmap::config& c) { c.page_shift = 5; }, "page_shift 5");
    rejects([](vmap::config& c) { c.page_shift = 17; }, "page_shift 17");
    rejects([](vmap::config& c) { c.page_shift = 64; }, "page_shift 64");
    rejects([](vmap::config& c) { c.page_shift = 200; }, "page_shift 200");
    rejects([](vmap::config& c) { c.vmalloc_start = 0; }, "range at 0");
    rejects([](vmap::config& c) { c.vmalloc_start += 100; }, "start not page aligned");
    rejects([](vmap::config& c) { c.vmalloc_size = 0; }, "empty range");
    rejects([](vmap::config& c) { c.vmalloc_size = 4096 * 10 + 1; }, "size not page aligned");
    rejects(
        [](vmap::config& c) {
            c.vmalloc_start = ~0UL - 4095;
            c.vmalloc_size = 8192;
        },
        "range wraps");
    rejects(
        [](vmap::config& c) {
            c.vmalloc_start = ~0UL - 4095;
            c.vmalloc_size = 4096;
        },
        "range ends at 2^64");
    rejects([](vmap::config& c) { c.possible = vmap::cpu_mask{}; }, "empty possible mask");
}

TEST(ConfigValidation, AcceptsTheLimits) {
    auto accepts = [](auto change, const char* what) {
        vmap::config c;
        c.possible = vmap::cpu_mask{3};
        change(c);
        EXPECT_NO_THROW(vmap::allocator{c}) << what;
    };
    accepts([](vmap::config& c) { c.bbmap_bits = 128; }, "bbmap_bits 2 * max_alloc");
    accepts([](vmap::config& c) { c.bbmap_bits = 65536; }, "bbmap_bits 65536");
    accepts(
        [](vmap::config& c) {
            c.max_alloc = 1;
            c.bbmap_bits = 2;
        },
        "max_alloc 1");
    accepts(
        [](vmap::config& c) {
            c.max_alloc = 1024;
            c.bbmap_bits = 2048;
        },
        "max_alloc 1024");
    accepts([](vmap::config& c) { c.page_shift = 6; }, "page_shift 6");
    accepts([](vmap::config& c) { c.page_shift = 16; }, "page_shift 16");
    accepts([](vmap::config& c) { c.vmalloc_size = 4096; }, "one page");
    accepts(
        [](vmap::config& c) {
            c.vmalloc_start = ~0UL - 8191;
            c.vmalloc_size = 4096;
        },
        "the highest page but one");
}

// strict off: the kernel's behaviour. What the kernel does not check is the
// caller's bug; where it would oops or corrupt memory, the port stops.
TEST(StrictOff, MisuseTheKernelWouldCrashOnIsFatal) {
    vmap::config c;
    c.possible = vmap::cpu_mask::first_n(2);
    c.strict = false;
    vmap::allocator a(c);
    std::vector<std::byte> mem(4 * a.page_size());
    std::byte* pages[4] = {&mem[0], &mem[a.page_size()], &mem[2 * a.page_size()],
                           &mem[3 * a.page_size()]};
    vmap::cpu_binding bind(0);
    std::byte* null_page[1] = {nullptr};
    EXPECT_DEATH(a.vm_map_ram(null_page), "vm_map_ram: a null page \\(strict off\\)");
    vmap::map_result r = a.vm_map_ram({pages, 4});
    ASSERT_TRUE(r);
    EXPECT_DEATH(a.vm_unmap_ram(r.addr, 0), "vm_unmap_ram of 0 pages \\(strict off\\)");
    EXPECT_DEATH(a.vm_unmap_ram(r.addr + a.block_size(), 1), "no vmap_block maps .*strict off");
    // VMALLOC_END itself passes the kernel's BUG_ON(addr > VMALLOC_END).
    EXPECT_DEATH(a.vm_unmap_ram(a.vmalloc_end(), 1), "no vmap_block maps");
    EXPECT_EQ(a.vm_unmap_ram(r.addr, 4), errc::ok);
}

// find_unlink_vmap_area(): strict off, a large unmap at an interior address
// unlinks the area that contains it (the kernel does not check the start).
TEST(StrictOff, LargeUnmapUnlinksTheAreaContainingTheAddress) {
    vmap::config c;
    c.possible = vmap::cpu_mask::first_n(1);
    c.strict = false;
    c.page_shift = 8;
    vmap::allocator a(c);
    const unsigned n = a.max_alloc() + 6;
    std::vector<std::byte> mem(n * a.page_size());
    std::vector<std::byte*> pages = page_pointers(mem, n, a.page_size());
    vmap::cpu_binding bind(0);
    vmap::map_result r = a.vm_map_ram(pages);
    ASSERT_TRUE(r);
    EXPECT_EQ(a.translate(r.addr), pages[0]);
    EXPECT_EQ(a.vm_unmap_ram(r.addr + 3 * a.page_size(), n), errc::ok);
    EXPECT_EQ(a.translate(r.addr), nullptr);
    EXPECT_EQ(a.stats().lazy_pages, static_cast<long>(n));
    EXPECT_EQ(a.diag().warn_hits(), 0u);
    // Strict refuses the same call and leaves the mapping alone.
    c.strict = true;
    c.on_warn = vmap::warn_policy::count;
    vmap::allocator s(c);
    r = s.vm_map_ram(pages);
    ASSERT_TRUE(r);
    EXPECT_EQ(s.vm_unmap_ram(r.addr + 3 * s.page_size(), n), errc::not_mapped);
    EXPECT_EQ(s.translate(r.addr), pages[0]);
    EXPECT_EQ(s.vm_unmap_ram(r.addr, n), errc::ok);
}

// config::inject_fault: each site fails the map with no_memory and gives
// back what it took; the range drains whole afterwards.
TEST(FaultInjection, EverySiteFailsCleanlyAndGivesEverythingBack) {
    for (vmap::fault_site site : {vmap::fault_site::vmap_pages_range, vmap::fault_site::vb_kmalloc,
                                  vmap::fault_site::vb_xa_insert})
        for (unsigned count : {3u, 100u})
            for (bool strict : {true, false}) {
                SCOPED_TRACE(std::string(vmap::to_string(site)) + " count " +
                             std::to_string(count) + (strict ? " strict" : ""));
                bool armed = true;
                vmap::config c;
                c.possible = vmap::cpu_mask::first_n(1);
                c.page_shift = 8;
                c.vmalloc_size = 8 * 1024 * 256;
                c.strict = strict;
                c.inject_fault = [&](vmap::fault_site f) {
                    bool fire = armed && f == site;
                    armed = armed && !fire;
                    return fire;
                };
                vmap::allocator a(c);
                std::vector<std::byte> mem(count * a.page_size());
                std::vector<std::byte*> pages = page_pointers(mem, count, a.page_size());
                vmap::cpu_binding bind(0);
                vmap::map_result r = a.vm_map_ram(pages);
                bool block_site = site != vmap::fault_site::vmap_pages_range;
                if (block_site && count > a.max_alloc()) {
                    EXPECT_TRUE(r); // a large request makes no block
                    EXPECT_EQ(a.vm_unmap_ram(r.addr, count), errc::ok);
                } else {
                    EXPECT_EQ(r.err, errc::no_memory);
                    EXPECT_EQ(r.addr, 0u);
                    EXPECT_FALSE(armed);
                }
                EXPECT_TRUE(a.check().empty());
                a.vm_unmap_aliases();
                a.reclaim_and_purge_vmap_areas();
                EXPECT_EQ(a.stats().blocks_live, 0u);
                EXPECT_EQ(a.areas().free_bytes(), c.vmalloc_size);
                // A second try, with nothing armed, succeeds.
                r = a.vm_map_ram(pages);
                ASSERT_TRUE(r);
                EXPECT_EQ(a.translate(r.addr + a.page_size() - 1), pages[0] + a.page_size() - 1);
                EXPECT_EQ(a.vm_unmap_ram(r.addr, count), errc::ok);
            }
}

} // namespace
