// SPDX-License-Identifier: MIT
// vmap/bitmap.hpp: the few bitmap operations vmap_block needs
// (bitmap_set, bitmap_clear, bitmap_empty, for_each_set_bitrange).
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace vmap {

class bitmap {
  public:
    explicit bitmap(unsigned bits) : bits_(bits), words_((bits + 63) / 64, 0) {}

    unsigned size() const { return bits_; }

    bool test(unsigned i) const { return (words_[i / 64] >> (i % 64)) & 1; }

    void set(unsigned start, unsigned len) { apply(start, len, true); }
    void clear(unsigned start, unsigned len) { apply(start, len, false); }

    // True if every bit of [start, start + len) is set.
    bool all_set(unsigned start, unsigned len) const {
        for (unsigned i = start; i < start + len; ++i)
            if (!test(i))
                return false;
        return true;
    }

    bool empty() const {
        for (std::uint64_t w : words_)
            if (w)
                return false;
        return true;
    }

    unsigned count() const {
        unsigned n = 0;
        for (std::uint64_t w : words_)
            n += static_cast<unsigned>(std::popcount(w));
        return n;
    }

    // Index of the first set bit at or after `from`, or size().
    unsigned next_set(unsigned from) const { return next(from, false); }
    unsigned next_clear(unsigned from) const { return next(from, true); }

    // for_each_set_bitrange(rs, re, ...): f(rs, re) for each maximal run.
    template <class F>
    void for_each_set_range(F&& f) const {
        unsigned rs = next_set(0);
        while (rs < bits_) {
            unsigned re = next_clear(rs);
            f(rs, re);
            rs = next_set(re);
        }
    }

  private:
    void apply(unsigned start, unsigned len, bool on) {
        while (len) {
            unsigned w = start / 64, b = start % 64;
            unsigned n = len < 64 - b ? len : 64 - b;
            std::uint64_t mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << b;
            words_[w] = on ? (words_[w] | mask) : (words_[w] & ~mask);
            start += n;
            len -= n;
        }
    }

    unsigned next(unsigned from, bool invert) const {
        while (from < bits_) {
            std::uint64_t w = words_[from / 64];
            if (invert)
                w = ~w;
            w &= ~0ULL << (from % 64);
            if (w) {
                unsigned i = (from / 64) * 64 + static_cast<unsigned>(std::countr_zero(w));
                return i < bits_ ? i : bits_;
            }
            from = (from / 64 + 1) * 64;
        }
        return bits_;
    }

    unsigned bits_;
    std::vector<std::uint64_t> words_;
};

} // namespace vmap
