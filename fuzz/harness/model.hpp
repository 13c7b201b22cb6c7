// SPDX-License-Identifier: MIT
// harness/model.hpp: the reference model - what the allocator must look like
// from outside, kept without looking inside it.
//
// It knows the live mappings (address, pages, which CPU made them, and for
// small ones the block that served them), so it can say what every byte of
// the range must read as, and it knows which pages were unmapped and not yet
// covered by a flush: pages no new mapping may contain, and for blocks the
// pages the next vm_unmap_aliases() must flush. Page buffers belong to the model and die at unmap,
// so an allocator that still reads them afterwards is a use-after-free under ASan.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <vector>

namespace harness {

// The byte at `i` of page `page` of a mapping filled with `fill`: distinct
// across pages and mappings, so a page mapped in the wrong place shows.
inline std::byte pattern(std::uint8_t fill, unsigned page, unsigned long i) {
    return static_cast<std::byte>(fill * 131u + page * 29u + static_cast<unsigned>(i) * 7u + 1u);
}

// out[j] = pattern(fill, page, first + j) for j < n (n <= 256: pattern()
// repeats every 256 bytes, i * 7 mod 256 with 7 odd). Eight bytes per word,
// each lane the previous plus 7 (a byte-wise add, no carry between lanes),
// built in a local and copied out once: under TSan every store to `out` is
// an instrumented call (a memcpy of a tail length, an intercepted one), and
// a local that does not escape is not instrumented at all.
inline void pattern_period(std::uint8_t fill, unsigned page, unsigned long first, std::byte* out,
                           std::size_t n) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    constexpr std::uint64_t steps = 0x312a231c150e0700ULL; // lanes 0, 7, 14, ..., 49
    std::uint64_t words[32];
    auto c = static_cast<std::uint8_t>(pattern(fill, page, first));
    for (std::size_t w = 0; w < (n + 7) / 8; ++w, c = static_cast<std::uint8_t>(c + 56)) {
        std::uint64_t x = c * ones;
        words[w] = ((x & ~high) + (steps & ~high)) ^ ((x ^ steps) & high);
    }
    std::memcpy(out, words, n);
}

struct mapping {
    unsigned long addr = 0;
    unsigned count = 0;
    std::uint8_t fill = 0;
    unsigned cpu = 0;
    const void* block = nullptr; // small mappings: the vmap_block that served it
    // The pages' memory, in chunks of at most chunk_bytes: a bigger block is
    // an mmap of its own in the sanitizers' allocators, paid in page faults
    // at every map (issue 18's profile of vmap_threads). Empty for a
    // mapping the model only records (model::record()).
    std::vector<std::unique_ptr<std::byte[]>> data;
    std::vector<std::byte*> pages; // pointers into data
    static constexpr unsigned long chunk_bytes = 64 * 1024;
};

// A buffer reused from read to read (vread's destination in check_vread()):
// one owner at a time. Not a vector: its resize writes every byte first.
class read_buffer {
  public:
    // `len` bytes, filled with `fill`.
    [[gnu::noinline]] std::span<std::byte> get(std::size_t len, std::byte fill) {
        if (len_ < len) {
            len_ = std::max(len, 2 * len_);
            buf_.reset(new std::byte[len_]);
        }
        std::memset(buf_.get(), static_cast<int>(fill), len);
        return {buf_.get(), len};
    }

  private:
    std::unique_ptr<std::byte[]> buf_;
    std::size_t len_ = 0;
};

class model {
  public:
    model(unsigned long page_size, unsigned max_alloc) : page_(page_size), max_alloc_(max_alloc) {}

    unsigned long page_size() const { return page_; }
    bool is_small(unsigned count) const { return count <= max_alloc_; }

    // A mapping's pages, filled, ready to be mapped; commit() makes it live.
    [[gnu::noinline]] std::unique_ptr<mapping> prepare(unsigned count, std::uint8_t fill) const {
        auto m = std::make_unique<mapping>();
        m->count = count;
        m->fill = fill;
        const unsigned per_chunk =
            static_cast<unsigned>(std::max<unsigned long>(1, mapping::chunk_bytes / page_));
        // pattern() repeats every 256 bytes (i * 7 mod 256, 7 odd): write
        // one period, then copy it; filling byte by byte was 87% of a run.
        const unsigned long period = page_ < 256 ? page_ : 256;
        m->data.reserve((count + per_chunk - 1) / per_chunk);
        m->pages.reserve(count);
        for (unsigned p = 0; p < count; ++p) {
            if (p % per_chunk == 0)
                m->data.emplace_back(new std::byte[std::min(per_chunk, count - p) * page_]);
            std::byte* base = m->data.back().get() + (p % per_chunk) * page_;
            pattern_period(fill, p, 0, base, period);
            for (unsigned long done = period; done < page_; done *= 2) // pages are 2^k bytes
                std::memcpy(base + done, base, std::min(done, page_ - done));
            m->pages.push_back(base);
        }
        return m;
    }

    // Records a live mapping another model owns (its place and fill, for
    // overlaps() and expected()), without pages of its own.
    void record(unsigned long addr, unsigned count, std::uint8_t fill) {
        auto m = std::make_unique<mapping>();
        m->addr = addr;
        m->count = count;
        m->fill = fill;
        commit(std::move(m));
    }

    void commit(std::unique_ptr<mapping> m) {
        by_addr_[m->addr] = m.get();
        live_.push_back(std::move(m));
    }

    std::size_t live_count() const { return live_.size(); }
    mapping& at(unsigned handle) { return *live_[handle % live_.size()]; }
    const std::vector<std::unique_ptr<mapping>>& live() const { return live_; }

    // Removes a live mapping; its pages become unflushed until a recorded
    // flush covers them (a small one's dirty range, a large one's lazy area).
    std::unique_ptr<mapping> remove(unsigned handle) {
        std::size_t i = handle % live_.size();
        std::unique_ptr<mapping> m = std::move(live_[i]);
        live_[i] = std::move(live_.back());
        live_.pop_back();
        by_addr_.erase(m->addr);
        for (unsigned p = 0; p < m->count; ++p)
            unflushed_.insert(unflushed_.end(), m->addr + p * page_);
        freed_.push_back(m->addr);
        if (freed_.size() > 64)
            freed_.erase(freed_.begin());
        return m;
    }

    // The live mapping covering `addr`, or nullptr.
    const mapping* covering(unsigned long addr) const {
        auto it = by_addr_.upper_bound(addr);
        if (it == by_addr_.begin())
            return nullptr;
        --it;
        const mapping* m = it->second;
        return inside(*m, addr) ? m : nullptr;
    }
    bool inside(const mapping& m, unsigned long addr) const {
        return addr >= m.addr && addr < m.addr + m.count * page_;
    }
    const mapping* starting_at(unsigned long addr) const {
        auto it = by_addr_.find(addr);
        return it == by_addr_.end() ? nullptr : it->second;
    }
    // Whether [addr, addr + bytes) meets any live mapping.
    bool overlaps(unsigned long addr, unsigned long bytes) const {
        auto it = by_addr_.lower_bound(addr);
        if (it != by_addr_.end() && it->first < addr + bytes)
            return true;
        return covering(addr) != nullptr;
    }

    // What vread must return for [addr, addr + out.size()): one lookup per
    // mapping met, not per byte (a byte-wise map walk was 90% of
    // vmap_threads) nor per page.
    [[gnu::noinline]] void expected(unsigned long addr, std::span<std::byte> out) const {
        std::size_t done = 0;
        const mapping* m = nullptr;
        while (done < out.size()) {
            unsigned long a = addr + done;
            std::size_t n = std::min<std::size_t>(page_ - a % page_, out.size() - done);
            if (!m || !inside(*m, a))
                m = covering(a);
            if (m) {
                unsigned long off = a - m->addr;
                unsigned page = static_cast<unsigned>(off / page_);
                // One period of pattern() (256 bytes), then copies of it.
                std::byte* dst = out.data() + done;
                std::size_t period = std::min<std::size_t>(n, 256);
                pattern_period(m->fill, page, off % page_, dst, period);
                for (std::size_t i = period; i < n; i += period)
                    std::memcpy(dst + i, dst, std::min(period, n - i));
            } else {
                std::memset(out.data() + done, 0, n);
            }
            done += n;
        }
    }

    // The first byte of `got` (read at addr) that is not what vread must
    // return, or got.size(). Compares against one period of pattern() per
    // page instead of writing out the expected bytes: the whole-mapping
    // reads of vmap_threads' final check made that the largest cost of a run.
    [[gnu::noinline]] std::size_t mismatch(unsigned long addr,
                                           std::span<const std::byte> got) const {
        static constexpr std::byte zeros[256] = {};
        std::byte period[256];
        std::size_t done = 0;
        const mapping* m = nullptr;
        while (done < got.size()) {
            unsigned long a = addr + done;
            std::size_t n = std::min<std::size_t>(page_ - a % page_, got.size() - done);
            const std::byte* want = zeros;
            std::size_t len = std::min<std::size_t>(n, 256);
            if (!m || !inside(*m, a))
                m = covering(a);
            if (m) {
                unsigned long off = a - m->addr;
                pattern_period(m->fill, static_cast<unsigned>(off / page_), off % page_, period,
                               len);
                want = period;
            }
            for (std::size_t i = 0; i < n; i += len) {
                std::size_t k = std::min(len, n - i);
                if (std::memcmp(got.data() + done + i, want, k) != 0) // not a byte loop:
                    for (std::size_t j = 0;; ++j)                     // fuzzers trace those
                        if (got[done + i + j] != want[j])
                            return done + i + j;
            }
            done += n;
        }
        return got.size();
    }

    // The model's own read buffer (check_vread()); a model serves one thread.
    read_buffer& scratch() const { return scratch_; }

    // A flush of [start, end) covers these pages.
    void flushed(unsigned long start, unsigned long end) {
        unflushed_.erase(unflushed_.lower_bound(start), unflushed_.lower_bound(end));
    }
    const std::set<unsigned long>& unflushed() const { return unflushed_; }
    const std::vector<unsigned long>& freed() const { return freed_; }

  private:
    unsigned long page_;
    unsigned max_alloc_;
    std::vector<std::unique_ptr<mapping>> live_;
    std::map<unsigned long, mapping*> by_addr_;
    std::set<unsigned long> unflushed_;
    std::vector<unsigned long> freed_; // recent unmapped addresses, oldest first
    mutable read_buffer scratch_;
};

} // namespace harness
