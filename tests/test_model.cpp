// SPDX-License-Identifier: MIT
// tests/test_model.cpp: the reference model's page contents
// (fuzz/harness/model.hpp): pattern_period() writes what pattern() says,
// and check_vread()'s comparison (model::mismatch()) finds the first wrong
// byte, in a page of a mapping or in a hole.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/model.hpp"

namespace {

TEST(Model, PatternPeriodIsPattern) {
    for (unsigned fill = 0; fill < 256; fill += 5)
        for (unsigned page = 0; page < 200; page += 13)
            for (unsigned long first = 0; first < 4096; first += 61)
                for (std::size_t n : {1ul, 7ul, 8ul, 9ul, 63ul, 64ul, 255ul, 256ul}) {
                    std::byte out[256];
                    auto f = static_cast<std::uint8_t>(fill);
                    harness::pattern_period(f, page, first, out, n);
                    for (std::size_t j = 0; j < n; ++j)
                        ASSERT_EQ(out[j], harness::pattern(f, page, first + j))
                            << "fill " << fill << " page " << page << " byte " << first + j;
                }
}

TEST(Model, PreparedPagesHoldThePattern) {
    harness::model m(4096, 64);
    auto mp = m.prepare(40, 9); // 40 pages: three chunks
    ASSERT_EQ(mp->pages.size(), 40u);
    for (unsigned p = 0; p < 40; ++p)
        for (unsigned long i = 0; i < 4096; i += 97)
            ASSERT_EQ(mp->pages[p][i], harness::pattern(9, p, i)) << "page " << p << " byte " << i;
}

TEST(Model, MismatchFindsTheFirstWrongByte) {
    const unsigned long page = 1024, base = 0x100000;
    harness::model m(page, 64);
    m.record(base + page, 3, 7); // pages 1-3; 0 and 4 are holes
    std::vector<std::byte> got(5 * page);
    m.expected(base, got);
    EXPECT_EQ(m.mismatch(base, got), got.size());
    for (std::size_t at : {std::size_t{0}, page - 1, page, 2 * page + 300, 4 * page + 5}) {
        std::vector<std::byte> bad = got;
        bad[at] ^= std::byte{1};
        EXPECT_EQ(m.mismatch(base, bad), at);
        bad[at + 1] ^= std::byte{1}; // a later wrong byte changes nothing
        EXPECT_EQ(m.mismatch(base, bad), at);
    }
    // From the middle of a page, across a hole's edge.
    std::span<const std::byte> tail(got.data() + page / 2, 2 * page);
    EXPECT_EQ(m.mismatch(base + page / 2, tail), tail.size());
}

} // namespace
