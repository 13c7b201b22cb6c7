// SPDX-License-Identifier: MIT
// tests/alloc_support.hpp: what the allocator tests share.
//   - the kernel's formulas for the block hash and key, written here from
//     mm/vmalloc.c's definitions, independent of the library's own;
//   - the radix-tree node count and minimal height of a key set;
//   - mapper: an allocator with a model of its live mappings, which checks
//     every mapping's address, bytes and page-table entries as it goes, and a
//     model of unflushed pages fed from the flush log.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <vmap/vmap.hpp>

#include "test_support.hpp"

namespace vmap_test {

// addr_to_vb_xa(): (addr / VMAP_BLOCK_SIZE) % nr_cpu_ids, and if that CPU is
// not possible, cpumask_next() of it.
inline unsigned kernel_hash_cpu(unsigned long addr, unsigned long block_size,
                                const vmap::cpu_mask& possible) {
    unsigned nr_cpu_ids = possible.limit();
    auto idx = static_cast<unsigned>((addr / block_size) % nr_cpu_ids);
    while (!possible.test(idx))
        ++idx;
    return idx;
}

// addr_to_vb_idx(): (addr - (VMALLOC_START & ~(VMAP_BLOCK_SIZE - 1))) / VMAP_BLOCK_SIZE.
// v3 of the seed keyed by the block's start address instead.
inline std::uint64_t kernel_vb_key(unsigned long addr, unsigned long vmalloc_start,
                                   unsigned long block_size, vmap::vb_key key) {
    if (key == vmap::vb_key::va_start)
        return addr / block_size * block_size;
    return (addr - vmalloc_start / block_size * block_size) / block_size;
}

inline unsigned radix_height(std::uint64_t max_key) {
    unsigned h = 0;
    while (h * 6 < 64 && (max_key >> (h * 6)) != 0)
        ++h;
    return h;
}

// sum over s = 0, 6, .., 6(h-1) of |{ k >> (s + 6) }|, h the minimal height.
inline std::size_t radix_nodes(const std::set<std::uint64_t>& keys) {
    if (keys.empty())
        return 0;
    std::size_t n = 0;
    for (unsigned level = 0; level < radix_height(*keys.rbegin()); ++level) {
        std::set<std::uint64_t> prefixes;
        for (std::uint64_t k : keys)
            prefixes.insert(level * 6 + 6 >= 64 ? 0 : k >> (level * 6 + 6));
        n += prefixes.size();
    }
    return n;
}

struct mapping {
    unsigned long addr = 0;
    std::vector<std::size_t> pages; // pool indices
    unsigned long reserved = 0;     // bytes the allocator set aside (2^order pages when small)
};

class mapper {
  public:
    explicit mapper(vmap::config cfg, std::size_t pool_pages = 128)
        : a(std::make_unique<vmap::allocator>(std::move(cfg))), pool(pool_pages, a->page_size()) {}

    std::unique_ptr<vmap::allocator> a;
    page_pool pool;
    std::map<unsigned long, mapping> live;   // by address
    std::set<unsigned long> unflushed;       // page addresses unmapped, not yet flushed
    std::vector<vmap::tlb_event> flush_seen; // every flush, in order
    std::vector<vmap::tlb_event> events;     // every TLB event, in order
    std::uint64_t flush_entries = 0;
    std::vector<std::byte> buf_, zeros_; // vread scratch

    unsigned long page() const { return a->page_size(); }

    // Maps n pool pages starting at `first` on `cpu`; nullopt on failure.
    vmap::map_result map(unsigned cpu, std::size_t n, std::size_t first) {
        std::vector<std::size_t> idx;
        for (std::size_t k = 0; k < n; ++k)
            idx.push_back((first + k) % pool.count());
        std::vector<std::byte*> ptrs;
        for (std::size_t i : idx)
            ptrs.push_back(pool[i]);
        vmap::map_result r;
        {
            vmap::cpu_binding b(cpu);
            r = a->vm_map_ram(ptrs);
        }
        drain();
        if (r) {
            mapping m;
            m.addr = r.addr;
            m.pages = std::move(idx);
            m.reserved = reserved_bytes(n);
            check_new(m);
            live[m.addr] = std::move(m);
        }
        return r;
    }

    unsigned long reserved_bytes(std::size_t n) const {
        if (n <= a->max_alloc())
            return (1UL << vmap::get_order(n * page(), a->page_shift())) * page();
        return n * page();
    }

    void unmap(unsigned long addr) {
        auto it = live.find(addr);
        ASSERT_TRUE(it != live.end());
        mapping m = it->second;
        live.erase(it);
        for (std::size_t i = 0; i < m.pages.size(); ++i)
            unflushed.insert(m.addr + i * page());
        ASSERT_EQ(a->vm_unmap_ram(m.addr, static_cast<unsigned>(m.pages.size())), vmap::errc::ok)
            << "unmap of " << m.pages.size() << " pages at " << std::hex << m.addr;
        drain();
        // Gone at once: holes read as zero, nothing translates.
        ASSERT_NO_FATAL_FAILURE(expect_bytes(m.addr, m.reserved));
        for (std::size_t i = 0; i < m.pages.size(); ++i)
            ASSERT_EQ(a->translate(m.addr + i * page()), nullptr);
    }

    void unmap_aliases() {
        a->vm_unmap_aliases();
        drain();
        ASSERT_TRUE(unflushed.empty())
            << unflushed.size() << " unmapped pages left unflushed, first at " << std::hex
            << *unflushed.begin();
        // Nothing was unmapped since: a second call flushes nothing.
        a->vm_unmap_aliases();
        std::vector<vmap::tlb_event> again;
        for (const vmap::tlb_event& e : a->tlb().take())
            if (e.kind == vmap::tlb_event_kind::flush)
                again.push_back(e);
        ASSERT_TRUE(again.empty())
            << "second vm_unmap_aliases flushed [" << std::hex << again.front().start << ", "
            << again.front().end << ") (" << vmap::to_string(again.front().reason) << ")";
    }

    void drain() {
        for (const vmap::tlb_event& f : a->tlb().take()) {
            events.push_back(f);
            if (f.kind != vmap::tlb_event_kind::flush)
                continue;
            ++flush_entries;
            flush_seen.push_back(f);
            auto it = unflushed.lower_bound(f.start);
            while (it != unflushed.end() && *it < f.end)
                it = unflushed.erase(it);
        }
    }

    // The bytes the model says a page-bounded run at `addr` holds: a pool
    // page's bytes, or nullptr for a hole (zeros).
    const std::byte* expected_at(unsigned long addr) const {
        auto it = live.upper_bound(addr);
        if (it == live.begin())
            return nullptr;
        const mapping& m = std::prev(it)->second;
        if (addr >= m.addr + m.pages.size() * page())
            return nullptr;
        unsigned long off = addr - m.addr;
        return pool[m.pages[off / page()]] + off % page();
    }

    void expect_bytes(unsigned long addr, std::size_t len) {
        if (buf_.size() < len)
            buf_.resize(len);
        if (zeros_.size() < page())
            zeros_.assign(page(), std::byte{0});
        std::span<std::byte> buf(buf_.data(), len);
        std::fill(buf.begin(), buf.end(), std::byte{0xee});
        a->vread(addr, buf);
        std::size_t i = 0;
        while (i < len) {
            unsigned long at = addr + i;
            unsigned long to_page_end = ((at | (page() - 1)) + 1) - at; // wraps right at ~0
            std::size_t n = std::min<std::size_t>(len - i, to_page_end);
            const std::byte* want = expected_at(at);
            if (std::memcmp(buf.data() + i, want ? want : zeros_.data(), n) != 0)
                for (std::size_t k = 0; k < n; ++k) {
                    std::byte w = want ? want[k] : std::byte{0};
                    if (buf[i + k] != w)
                        FAIL() << "vread byte at " << std::hex << at + k << " is "
                               << static_cast<int>(buf[i + k]) << ", expected "
                               << static_cast<int>(w) << (want ? " (mapped)" : " (hole)");
                }
            i += n;
        }
    }

    void expect_translate(const mapping& m) {
        for (std::size_t i = 0; i < m.pages.size(); ++i) {
            unsigned long off = (i * 37) % page();
            ASSERT_EQ(a->translate(m.addr + i * page() + off), pool[m.pages[i]] + off);
        }
        for (unsigned long p = m.pages.size(); p * page() < m.reserved; ++p)
            ASSERT_EQ(a->translate(m.addr + p * page()), nullptr) << "unmapped tail page";
    }

    void check_new(const mapping& m) {
        unsigned long start = a->vmalloc_start(), end = a->vmalloc_end();
        ASSERT_EQ(m.addr % page(), 0u) << std::hex << m.addr;
        ASSERT_GE(m.addr, start);
        ASSERT_LE(m.addr + m.reserved, end);
        ASSERT_GT(m.addr + m.reserved, m.addr);
        if (m.pages.size() <= a->max_alloc()) { // a block allocation stays in its block
            ASSERT_EQ(m.addr / a->block_size(), (m.addr + m.reserved - 1) / a->block_size());
        }
        auto next = live.lower_bound(m.addr);
        if (next != live.end()) {
            ASSERT_LE(m.addr + m.reserved, next->second.addr) << "overlaps the next mapping";
        }
        if (next != live.begin()) {
            const mapping& prev = std::prev(next)->second;
            ASSERT_LE(prev.addr + prev.reserved, m.addr) << "overlaps the previous mapping";
        }
        mapping tmp = m;
        live[m.addr] = tmp;
        ASSERT_NO_FATAL_FAILURE(expect_bytes(m.addr, m.reserved));
        ASSERT_NO_FATAL_FAILURE(expect_translate(m));
        live.erase(m.addr);
    }

    void expect_all_intact() {
        for (auto& [addr, m] : live)
            ASSERT_NO_FATAL_FAILURE(expect_bytes(addr, m.pages.size() * page()));
    }

    void expect_check_clean() {
        std::vector<std::string> problems = a->check();
        ASSERT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems[0];
    }

    // Start addresses of the blocks in the xarrays.
    std::vector<unsigned long> blocks() {
        std::vector<unsigned long> v;
        a->for_each_block([&](vmap::vmap_block* vb) { v.push_back(vb->va->va_start); });
        std::sort(v.begin(), v.end());
        return v;
    }

    void unmap_all() {
        while (!live.empty())
            ASSERT_NO_FATAL_FAILURE(unmap(live.begin()->first));
    }
};

} // namespace vmap_test
