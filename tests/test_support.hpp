// SPDX-License-Identifier: MIT
// tests/test_support.hpp: what the unit tests share.
//   - seeds: every randomised test takes its seed from VMAP_TEST_SEED when set,
//     else from a fixed default, and prints it on failure (SCOPED_TRACE);
//   - death tests run "threadsafe" (re-executed child), so they work in
//     processes that have threads and under ThreadSanitizer;
//   - regex_escape() turns a file name into a death-test regex literal;
//   - page_pool: caller-owned pages, each filled with its own pattern, so a
//     vread() of the wrong page or a stale page cannot pass for the right one.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vmap_test {

// Set from a global environment, not a static initializer: gtest's flag
// strings may not be constructed yet when this header's statics run.
class threadsafe_death_tests : public testing::Environment {
  public:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
inline testing::Environment* const threadsafe_death_tests_env =
    testing::AddGlobalTestEnvironment(new threadsafe_death_tests);

inline std::uint64_t seed_or(std::uint64_t fallback) {
    if (const char* s = std::getenv("VMAP_TEST_SEED"); s && *s)
        return std::strtoull(s, nullptr, 0);
    return fallback;
}

inline std::string seed_note(std::uint64_t seed) {
    return "seed " + std::to_string(seed) + " (repeat with VMAP_TEST_SEED=" + std::to_string(seed) +
           ")";
}

// POSIX extended regex (gtest's death-test regex on Linux) for a literal.
inline std::string regex_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (std::string_view(".[]()*+?{}|^$\\").find(c) != std::string_view::npos)
            out += '\\';
        out += c;
    }
    return out;
}

class page_pool {
  public:
    // `salt` tells pools apart (one per thread in the threaded tests).
    page_pool(std::size_t count, std::size_t page_size, std::uint64_t salt = 0) : size_(page_size) {
        for (std::size_t i = 0; i < count; ++i) {
            pages_.emplace_back(new std::byte[page_size]);
            fill(pages_.back().get(), salt * 0x100000001b3ULL + i, page_size);
        }
    }

    // Page i's bytes: a mix of (i, offset) with every byte odd, so pages
    // differ almost everywhere and no mapped byte looks like a hole (zero).
    static void fill(std::byte* page, std::uint64_t i, std::size_t size) {
        for (std::size_t w = 0; w * 8 < size; ++w) {
            std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL ^ (w + 1) * 0xbf58476d1ce4e5b9ULL;
            x ^= x >> 31;
            x *= 0x94d049bb133111ebULL;
            x |= 0x0101010101010101ULL;
            std::memcpy(page + w * 8, &x, std::min<std::size_t>(8, size - w * 8));
        }
    }

    std::byte* operator[](std::size_t i) const { return pages_[i].get(); }
    std::size_t count() const { return pages_.size(); }
    std::size_t page_size() const { return size_; }

    // Pointers to pages first .. first + n - 1 (wrapping round the pool).
    std::vector<std::byte*> span(std::size_t first, std::size_t n) const {
        std::vector<std::byte*> v;
        for (std::size_t k = 0; k < n; ++k)
            v.push_back(pages_[(first + k) % pages_.size()].get());
        return v;
    }

  private:
    std::size_t size_;
    std::vector<std::unique_ptr<std::byte[]>> pages_;
};

} // namespace vmap_test
