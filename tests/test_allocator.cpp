// SPDX-License-Identifier: MIT
// tests/test_allocator.cpp: vmap/allocator.hpp over 32 configurations
// (possible masks {0}, {0,1}, {0,2,5}, first_n(4); per-CPU hashed and global
// xarrays; block-index and va_start keys; 128-page and default blocks).
//
// Every mapping is checked when it is made (alignment, range, no overlap, its
// bytes through vread, its page-table entries through translate) and when it
// goes (zeros, no translation). A model of unflushed pages, fed from the flush
// log, checks vm_unmap_aliases; check() must stay empty throughout.
#include <algorithm>
#include <climits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <vmap/vmap.hpp>

#include "alloc_support.hpp"

namespace {

using vmap::errc;
using vmap::flush_reason;
using vmap::vb_key;
using vmap::vb_scheme;
using vmap_test::mapper;

struct alloc_param {
    std::string mask_name;
    vmap::cpu_mask mask;
    vb_scheme scheme;
    vb_key key;
    unsigned bits; // 0: the kernel's formula
};

void PrintTo(const alloc_param& p, std::ostream* os) {
    *os << p.mask_name << " " << vmap::to_string(p.scheme) << " " << vmap::to_string(p.key)
        << " bits " << p.bits;
}

std::vector<alloc_param> all_params() {
    std::vector<std::pair<std::string, vmap::cpu_mask>> masks = {
        {"cpu0", vmap::cpu_mask{0}},
        {"cpu01", vmap::cpu_mask{0, 1}},
        {"cpu025", vmap::cpu_mask{0, 2, 5}},
        {"first4", vmap::cpu_mask::first_n(4)}};
    std::vector<alloc_param> v;
    for (auto& [name, mask] : masks)
        for (vb_scheme s : {vb_scheme::per_cpu_hashed, vb_scheme::global})
            for (vb_key k : {vb_key::block_index, vb_key::va_start})
                for (unsigned bits : {128u, 0u})
                    v.push_back({name, mask, s, k, bits});
    return v;
}

std::string param_name(const testing::TestParamInfo<alloc_param>& i) {
    return i.param.mask_name + "_" + vmap::to_string(i.param.scheme) + "_" +
           vmap::to_string(i.param.key) + "_" +
           (i.param.bits ? std::to_string(i.param.bits) : std::string("defaultbits"));
}

class Allocator : public testing::TestWithParam<alloc_param> {
  protected:
    vmap::config make_config() const {
        vmap::config c;
        c.possible = GetParam().mask;
        c.scheme = GetParam().scheme;
        c.key = GetParam().key;
        c.bbmap_bits = GetParam().bits;
        return c;
    }
    // VMAP_BBMAP_BITS at NR_CPUS 8192; pass a test's page_shift if not 12.
    unsigned bits(unsigned page_shift = 12) const {
        return GetParam().bits ? GetParam().bits : vmap::default_bbmap_bits(8192, page_shift);
    }
    std::vector<unsigned> cpus() const { return GetParam().mask.cpus(); }

    void TearDown() override {
        if (h_) {
            EXPECT_EQ(h_->a->diag().warn_hits(), 0u) << "unexpected WARN";
            EXPECT_EQ(h_->a->diag().bug_count(), 0u);
        }
    }

    mapper& make(vmap::config c) {
        h_ = std::make_unique<mapper>(std::move(c));
        return *h_;
    }
    mapper& make() { return make(make_config()); }

    // Maps chunks summing to `pages` (each a power of two <= max_alloc) on
    // `cpu`; all must land in one block, whose start is returned.
    unsigned long fill_block(mapper& m, unsigned cpu, unsigned pages,
                             std::vector<unsigned long>* addrs = nullptr) {
        unsigned long block = 0;
        bool first = true;
        for (unsigned chunk = m.a->max_alloc(); chunk; chunk /= 2)
            while (pages >= chunk) {
                vmap::map_result r = m.map(cpu, chunk, pages);
                EXPECT_EQ(r.err, errc::ok);
                unsigned long b = r.addr & ~(m.a->block_size() - 1);
                if (first)
                    block = b;
                EXPECT_EQ(b, block) << "chunk of " << chunk << " left the block";
                first = false;
                if (addrs)
                    addrs->push_back(r.addr);
                pages -= chunk;
            }
        return block;
    }

    std::unique_ptr<mapper> h_;
};

TEST_P(Allocator, Geometry) {
    mapper& m = make();
    EXPECT_EQ(m.a->bbmap_bits(), bits(12));
    EXPECT_EQ(m.a->page_size(), 4096u);
    EXPECT_EQ(m.a->block_size(), bits(12) * 4096UL);
    EXPECT_EQ(m.a->purge_threshold(), bits(12) / 4);
    EXPECT_EQ(m.a->max_alloc(), 64u);
    EXPECT_EQ(m.a->vmalloc_start(), vmap::default_vmalloc_start);
    EXPECT_EQ(m.a->vmalloc_end(), vmap::default_vmalloc_start + vmap::default_vmalloc_size);
    EXPECT_EQ(m.a->cpus().nr_cpu_ids(), GetParam().mask.limit());
    if (!GetParam().bits) {
        EXPECT_EQ(m.a->bbmap_bits(), 256u); // NR_CPUS 8192: 1 MiB blocks, whatever the mask
    }
}

// The two geometries: NR_CPUS (config::nr_cpus, the kernel's) sizes blocks
// whatever the mask; nr_cpus 0 takes nr_cpu_ids instead (the old port).
TEST(Geometry, BlocksFollowNrCpusNotTheMask) {
    for (unsigned n : {1u, 4u, 64u, 128u}) {
        vmap::config c;
        c.possible = vmap::cpu_mask::first_n(n);
        vmap::allocator nr_cpus(c);
        EXPECT_EQ(nr_cpus.bbmap_bits(), 256u) << n << " CPUs";
        c.nr_cpus = 0; // nr_cpu_ids <= 2048: the formula's 1024-page maximum
        EXPECT_EQ(vmap::allocator(c).bbmap_bits(), 1024u) << n << " CPUs";
    }
    vmap::config c;
    c.possible = vmap::cpu_mask::first_n(4096);
    c.nr_cpus = 0;
    EXPECT_EQ(vmap::allocator(c).bbmap_bits(), 512u); // 2^25 pages / 4096 / 16
    c.nr_cpus = 8192;
    EXPECT_EQ(vmap::allocator(c).bbmap_bits(), 256u);
    c.nr_cpus = 2048; // fewer than nr_cpu_ids: the kernel cannot be built so
    EXPECT_THROW(vmap::allocator{c}, std::invalid_argument);
}

TEST_P(Allocator, MapUnmapOfEverySize) {
    vmap::config c = make_config();
    c.page_shift = 8;
    mapper& m = make(c);
    std::vector<std::size_t> sizes = {1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33, 63, 64, 65, 100, 200};
    std::size_t first = 0;
    for (unsigned cpu : cpus())
        for (std::size_t n : sizes) {
            SCOPED_TRACE("cpu " + std::to_string(cpu) + ", " + std::to_string(n) + " pages");
            vmap::map_result r = m.map(cpu, n, first);
            ASSERT_FALSE(HasFatalFailure());
            ASSERT_EQ(r.err, errc::ok);
            first += n;
        }
    ASSERT_NO_FATAL_FAILURE(m.expect_all_intact());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    ASSERT_NO_FATAL_FAILURE(m.unmap_all());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    EXPECT_EQ(m.a->stats().blocks_live, m.blocks().size());
}

TEST_P(Allocator, SmallMappingsBumpAllocateInsideOneBlockPerCpu) {
    mapper& m = make();
    for (unsigned cpu : cpus()) {
        vmap::map_result a = m.map(cpu, 1, 0);
        vmap::map_result b = m.map(cpu, 2, 1);
        vmap::map_result c = m.map(cpu, 3, 3); // order 2: four pages
        vmap::map_result d = m.map(cpu, 1, 6);
        ASSERT_FALSE(HasFatalFailure());
        ASSERT_TRUE(a && b && c && d);
        EXPECT_EQ(a.addr % m.a->block_size(), 0u) << "a new block starts with its first request";
        EXPECT_EQ(b.addr, a.addr + 1 * 4096);
        EXPECT_EQ(c.addr, a.addr + 3 * 4096);
        EXPECT_EQ(d.addr, a.addr + 7 * 4096);
    }
    // One block per CPU, each on its own CPU's free list.
    EXPECT_EQ(m.blocks().size(), cpus().size());
    EXPECT_EQ(m.a->stats().blocks_created, cpus().size());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

TEST_P(Allocator, ABlockIsFreedWhenAllItsPagesAreDirty) {
    mapper& m = make();
    unsigned cpu = cpus().back();
    std::vector<unsigned long> addrs;
    unsigned long block = fill_block(m, cpu, bits(), &addrs);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(m.blocks(), std::vector<unsigned long>{block});
    // The block is full: the next request opens another one.
    vmap::map_result other = m.map(cpu, 1, 0);
    ASSERT_TRUE(other);
    EXPECT_NE(other.addr & ~(m.a->block_size() - 1), block);
    for (std::size_t i = 0; i + 1 < addrs.size(); ++i) {
        ASSERT_NO_FATAL_FAILURE(m.unmap(addrs[i]));
        EXPECT_EQ(m.a->stats().blocks_freed, 0u);
        EXPECT_NE(m.a->find_block(block), nullptr);
    }
    m.flush_seen.clear();
    ASSERT_NO_FATAL_FAILURE(m.unmap(addrs.back()));
    vmap::allocator_stats st = m.a->stats();
    EXPECT_EQ(st.blocks_freed, 1u);
    EXPECT_EQ(st.blocks_purged, 0u);
    EXPECT_EQ(st.blocks_live, 1u);
    EXPECT_EQ(m.a->find_block(block), nullptr);
    // Its area is freed lazily: no flush yet, and not reusable until one.
    EXPECT_TRUE(m.flush_seen.empty());
    EXPECT_EQ(st.lazy_pages, static_cast<long>(bits()));
    EXPECT_FALSE(m.unflushed.empty());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    // The next lazy purge flushes the whole block, then returns it.
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    ASSERT_EQ(m.flush_seen.size(), 1u);
    EXPECT_EQ(m.flush_seen[0].start, block);
    EXPECT_EQ(m.flush_seen[0].end, block + m.a->block_size());
    EXPECT_EQ(m.flush_seen[0].reason, flush_reason::lazy_purge);
    EXPECT_EQ(m.a->stats().lazy_pages, 0);
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

// fc1e0d980037 and a09fad96ffb1: a full block's dirty pages are flushed too,
// and a flushed range is not flushed again.
TEST_P(Allocator, UnmapAliasesFlushesEveryUnmappedPageOnce) {
    mapper& m = make();
    unsigned cpu = cpus().front();
    std::vector<unsigned long> full_addrs;
    unsigned long full = fill_block(m, cpu, bits(), &full_addrs); // free == 0: on no list
    ASSERT_FALSE(HasFatalFailure());
    vmap::map_result p1 = m.map(cpu, 8, 0);  // a partly used block
    vmap::map_result p2 = m.map(cpu, 16, 8); // ..
    vmap::map_result big = m.map(cpu, 70, 0);
    ASSERT_TRUE(p1 && p2 && big);
    ASSERT_GE(full_addrs.size(), 2u);
    ASSERT_NO_FATAL_FAILURE(m.unmap(full_addrs[1])); // a hole in the full block
    ASSERT_NO_FATAL_FAILURE(m.unmap(p1.addr));
    EXPECT_FALSE(m.unflushed.empty());
    ASSERT_NO_FATAL_FAILURE(m.unmap(big.addr)); // lazy: flushed by the next purge
    std::size_t before = m.flush_seen.size();
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    // One merged range, covering the full block's holes, p1 and the lazy
    // large area: the lazy purge flushes for vm_unmap_aliases too.
    ASSERT_EQ(m.flush_seen.size(), before + 1);
    const vmap::tlb_event& f = m.flush_seen.back();
    EXPECT_EQ(f.reason, flush_reason::lazy_purge);
    EXPECT_LE(f.start, std::min(full_addrs[1], big.addr));
    EXPECT_GE(f.end, std::max(p1.addr + 8 * 4096, big.addr + 70 * 4096));
    EXPECT_NE(m.a->find_block(full), nullptr);
    // Maps in between do not make the next call flush.
    ASSERT_TRUE(m.map(cpu, 4, 30));
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    EXPECT_EQ(m.flush_seen.size(), before + 1);
    // A new unmap is flushed by the next call, and only then.
    ASSERT_NO_FATAL_FAILURE(m.unmap(p2.addr));
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    ASSERT_EQ(m.flush_seen.size(), before + 2);
    EXPECT_EQ(m.flush_seen.back().start, p2.addr);
    EXPECT_EQ(m.flush_seen.back().end, p2.addr + 16 * 4096);
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

// 77e50af07f14: vm_unmap_aliases() purges a fragmented block (no page in use)
// only when it has fewer than VMAP_PURGE_THRESHOLD free pages;
// purge_fragmented_blocks(cpu) is forced and takes it anyway.
TEST_P(Allocator, NonForcedPurgeSparesBlocksWithFreePagesAtOrAboveTheThreshold) {
    vmap::config c = make_config();
    c.page_shift = 8;
    mapper& m = make(c);
    const unsigned t = m.a->purge_threshold();
    const unsigned cpu = cpus().back();
    for (unsigned free : {1u, t - 1, t, t + 1, bits(8) / 2, bits(8) - 1}) {
        SCOPED_TRACE("free " + std::to_string(free) + ", threshold " + std::to_string(t));
        ASSERT_TRUE(m.blocks().empty());
        std::vector<unsigned long> addrs;
        unsigned long block = fill_block(m, cpu, bits(8) - free, &addrs);
        ASSERT_FALSE(HasFatalFailure());
        for (unsigned long a : addrs)
            ASSERT_NO_FATAL_FAILURE(m.unmap(a));
        ASSERT_NE(m.a->find_block(block), nullptr) << "a block with free pages was freed";
        std::uint64_t purged = m.a->stats().blocks_purged;
        std::size_t seen = m.flush_seen.size();
        ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
        ASSERT_EQ(m.flush_seen.size(), seen + 1);
        const vmap::tlb_event& f = m.flush_seen.back();
        if (free < t) {
            EXPECT_EQ(m.a->find_block(block), nullptr) << "not purged";
            EXPECT_EQ(m.a->stats().blocks_purged, purged + 1);
            EXPECT_EQ(f.reason, flush_reason::lazy_purge); // its area, lazily freed
            EXPECT_EQ(f.start, block);
            EXPECT_EQ(f.end, block + m.a->block_size());
        } else {
            EXPECT_NE(m.a->find_block(block), nullptr) << "a usable block was purged";
            EXPECT_EQ(m.a->stats().blocks_purged, purged);
            EXPECT_EQ(f.reason, flush_reason::unmap_aliases);
            EXPECT_EQ(f.start, block);
            EXPECT_EQ(f.end, block + (bits(8) - free) * m.page());
            // Forced: taken now.
            m.a->purge_fragmented_blocks(cpu);
            m.drain();
            EXPECT_EQ(m.a->find_block(block), nullptr) << "forced purge left it";
            EXPECT_EQ(m.a->stats().blocks_purged, purged + 1);
            EXPECT_EQ(m.a->stats().lazy_pages, static_cast<long>(bits(8)));
            ASSERT_NO_FATAL_FAILURE(m.unmap_aliases()); // the lazy purge flushes it
            EXPECT_EQ(m.flush_seen.back().reason, flush_reason::lazy_purge);
            EXPECT_EQ(m.flush_seen.back().start, block);
        }
        ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    }
}

TEST_P(Allocator, ForcedPurgeTakesOnlyFragmentedBlocksOfThatCpu) {
    mapper& m = make();
    std::map<unsigned, unsigned long> fragmented, in_use;
    for (unsigned cpu : cpus()) {
        std::vector<unsigned long> addrs;
        fragmented[cpu] = fill_block(m, cpu, 3, &addrs); // 2 + 1 pages
        ASSERT_FALSE(HasFatalFailure());
        for (unsigned long a : addrs)
            ASSERT_NO_FATAL_FAILURE(m.unmap(a));
    }
    // Blocks in use are never purged: fill the fragmented ones' CPUs' lists
    // with a fresh block holding a live mapping.
    for (unsigned cpu : cpus()) {
        vmap::map_result r = m.map(cpu, 64, 0);
        ASSERT_TRUE(r);
        in_use[cpu] = r.addr & ~(m.a->block_size() - 1);
        ASSERT_EQ(in_use[cpu], fragmented[cpu]) << "the fragmented block had room";
    }
    // Now every block is in use: nothing to purge anywhere.
    for (unsigned cpu : cpus())
        m.a->purge_fragmented_blocks(cpu);
    EXPECT_EQ(m.a->stats().blocks_purged, 0u);
    ASSERT_NO_FATAL_FAILURE(m.unmap_all());
    // Fragmented again (free + dirty == BITS); purge one CPU at a time.
    std::uint64_t purged = 0;
    for (unsigned cpu : cpus()) {
        m.a->purge_fragmented_blocks(cpu);
        m.drain();
        ++purged;
        EXPECT_EQ(m.a->stats().blocks_purged, purged);
        EXPECT_EQ(m.a->find_block(fragmented[cpu]), nullptr);
        for (unsigned other : cpus())
            if (other > cpu) {
                EXPECT_NE(m.a->find_block(fragmented[other]), nullptr)
                    << "purging CPU " << cpu << " took CPU " << other << "'s block";
            }
        ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    }
    EXPECT_TRUE(m.blocks().empty());
}

// Exhaustion of a range of two blocks; the fragmented block is purged and the
// request retried, as alloc_vmap_area() does.
TEST_P(Allocator, ExhaustionFailsCleanlyAndPurgeRetryRecoversFragmentedBlocks) {
    vmap::config c = make_config();
    c.page_shift = 8; // small pages: filling blocks copies less
    const unsigned long ps = 256;
    c.vmalloc_size = 2UL * bits(8) * ps;
    mapper& m = make(c);
    const unsigned cpu = cpus().front();
    std::vector<unsigned long> a_addrs, b_addrs;
    unsigned long block_a = fill_block(m, cpu, bits(8) - 1, &a_addrs); // free 1
    unsigned long block_b = fill_block(m, cpu, bits(8), &b_addrs);     // full
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_NE(block_a, block_b);
    ASSERT_EQ(m.blocks().size(), 2u);

    const vmap::allocator_stats before = m.a->stats();
    for (unsigned any : cpus()) {
        EXPECT_EQ(m.map(any, 2, 0).err, errc::no_space);
        EXPECT_EQ(m.map(any, 64, 0).err, errc::no_space);
        EXPECT_EQ(m.map(any, 65, 0).err, errc::no_space);
    }
    EXPECT_EQ(m.a->stats().blocks_purged, before.blocks_purged);
    EXPECT_EQ(m.a->stats().blocks_live, 2u);
    ASSERT_NO_FATAL_FAILURE(m.expect_all_intact());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    // One page still fits in block A; with it A is full.
    vmap::map_result last = m.map(cpu, 1, 0);
    ASSERT_TRUE(last);
    EXPECT_EQ(last.addr, block_a + (bits(8) - 1) * ps);
    a_addrs.push_back(last.addr);
    // Unmapping all of A makes it fully dirty: freed, no purge needed.
    for (unsigned long a : a_addrs)
        ASSERT_NO_FATAL_FAILURE(m.unmap(a));
    EXPECT_EQ(m.a->find_block(block_a), nullptr);
    EXPECT_EQ(m.a->stats().blocks_freed, 1u);
    EXPECT_EQ(m.a->stats().blocks_purged, 0u);
    // Rebuild A fragmented: all its pages unmapped, 1 page never handed out.
    a_addrs.clear();
    ASSERT_EQ(fill_block(m, cpu, bits(8) - 1, &a_addrs), block_a);
    for (unsigned long a : a_addrs)
        ASSERT_NO_FATAL_FAILURE(m.unmap(a));
    ASSERT_NE(m.a->find_block(block_a), nullptr);
    // A request that A cannot hold, from another CPU when there is one.
    unsigned other = cpus().back();
    vmap::map_result r = m.map(other, 2, 0);
    ASSERT_TRUE(r) << vmap::to_string(r.err);
    EXPECT_EQ(r.addr, block_a) << "the purged block's range is the lowest free one";
    EXPECT_EQ(m.a->stats().blocks_purged, before.blocks_purged + 1);
    ASSERT_NO_FATAL_FAILURE(m.expect_all_intact());
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
    // A range smaller than a block serves no small request at all.
    vmap::config tiny = make_config();
    tiny.page_shift = 8;
    tiny.vmalloc_size = ps * (bits(8) - 1);
    vmap::allocator t(tiny);
    std::byte page[4096];
    std::byte* p = page;
    vmap::cpu_binding bind(cpu);
    EXPECT_EQ(t.vm_map_ram({&p, 1}).err, errc::no_space);
    std::vector<std::byte*> many(bits(8) - 1, p);
    EXPECT_TRUE(t.vm_map_ram(many)) << "a large mapping still fits";
}

TEST_P(Allocator, HashAndKeyFollowTheKernelFormulas) {
    const alloc_param& prm = GetParam();
    for (unsigned long lead_pages : {0UL, 3UL}) { // VMALLOC_START aligned, and not
        vmap::config c = make_config();
        c.page_shift = 8; // small pages: filling blocks copies less
        c.vmalloc_start += lead_pages * 256;
        c.vmalloc_size = 64UL << 30;
        mapper m(c);
        const unsigned long bs = m.a->block_size();
        std::mt19937_64 rng(vmap_test::seed_or(0x5eed0201));
        std::vector<unsigned long> addrs;
        for (unsigned long b = 0; b < 3UL * prm.mask.limit() + 2; ++b)
            for (unsigned long off : {0UL, 256UL, bs - 1})
                addrs.push_back(c.vmalloc_start / bs * bs + b * bs + off);
        for (int i = 0; i < 200; ++i)
            addrs.push_back(c.vmalloc_start + rng() % c.vmalloc_size);
        for (unsigned long addr : addrs) {
            if (addr < c.vmalloc_start)
                continue;
            SCOPED_TRACE("addr " + vmap::vmap_area_allocator::hex(addr));
            unsigned want_cpu = vmap_test::kernel_hash_cpu(addr, bs, prm.mask);
            ASSERT_TRUE(prm.mask.test(want_cpu));
            ASSERT_EQ(m.a->addr_to_vb_cpu(addr), want_cpu);
            if (prm.scheme == vb_scheme::per_cpu_hashed)
                ASSERT_EQ(&m.a->addr_to_vb_xa(addr), &m.a->queue(want_cpu).vmap_blocks);
            else
                ASSERT_EQ(&m.a->addr_to_vb_xa(addr), &m.a->addr_to_vb_xa(c.vmalloc_start));
            ASSERT_EQ(m.a->addr_to_vb_idx(addr),
                      vmap_test::kernel_vb_key(addr, c.vmalloc_start, bs, prm.key));
        }
        if (prm.scheme == vb_scheme::global) {
            for (unsigned cpu : cpus())
                EXPECT_NE(&m.a->addr_to_vb_xa(c.vmalloc_start), &m.a->queue(cpu).vmap_blocks);
        }
        // Real blocks sit where the formulas say: fill 2 * nr_cpu_ids blocks.
        for (unsigned long b = 0; b < 2UL * prm.mask.limit(); ++b) {
            std::vector<unsigned long> addrs_in;
            fill_block(m, cpus()[b % cpus().size()], bits(8), &addrs_in);
            ASSERT_FALSE(HasFatalFailure());
        }
        for (unsigned long start : m.blocks()) {
            unsigned want_cpu = vmap_test::kernel_hash_cpu(start, bs, prm.mask);
            std::uint64_t key = vmap_test::kernel_vb_key(start, c.vmalloc_start, bs, prm.key);
            vmap::xarray<vmap::vmap_block>& xa = prm.scheme == vb_scheme::per_cpu_hashed
                                                     ? m.a->queue(want_cpu).vmap_blocks
                                                     : m.a->addr_to_vb_xa(start);
            vmap::vmap_block* vb = xa.load(key);
            ASSERT_NE(vb, nullptr) << vmap::vmap_area_allocator::hex(start);
            EXPECT_EQ(vb->va->va_start, start);
            EXPECT_EQ(m.a->find_block(start + bs - 1), vb);
        }
        ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
        EXPECT_EQ(m.a->diag().warn_hits(), 0u);
    }
}

// The per-queue numbers in stats() against the formulas: which queue each
// block hashes to, and the radix-tree node count and height of its keys.
void expect_stats_match_formulas(mapper& m, const alloc_param& prm) {
    vmap::allocator_stats st = m.a->stats();
    const unsigned long bs = m.a->block_size();
    std::map<unsigned, std::set<std::uint64_t>> keys; // by queue (UINT_MAX: global)
    std::size_t nblocks = 0;
    for (unsigned long start : m.blocks()) {
        unsigned q = prm.scheme == vb_scheme::global
                         ? UINT_MAX
                         : vmap_test::kernel_hash_cpu(start, bs, prm.mask);
        keys[q].insert(vmap_test::kernel_vb_key(start, m.a->vmalloc_start(), bs, prm.key));
        ++nblocks;
    }
    ASSERT_EQ(st.blocks_live, nblocks);
    ASSERT_EQ(st.blocks_live, st.blocks_created - st.blocks_freed);
    ASSERT_LE(st.blocks_purged, st.blocks_freed);
    ASSERT_EQ(st.flushes, m.flush_entries);
    ASSERT_EQ(st.queues.size(), prm.mask.count());
    std::size_t nodes = 0;
    unsigned max_h = 0;
    for (auto& [q, ks] : keys) {
        nodes += vmap_test::radix_nodes(ks);
        max_h = std::max(max_h, vmap_test::radix_height(*ks.rbegin()));
    }
    ASSERT_EQ(st.xa_nodes, nodes);
    ASSERT_EQ(st.xa_max_height, max_h);
    ASSERT_EQ(st.xa_bytes, nodes * vmap::xarray<vmap::vmap_block>::node_bytes);
    for (const vmap::queue_stats& qs : st.queues) {
        ASSERT_TRUE(prm.mask.test(qs.cpu));
        if (prm.scheme == vb_scheme::global) {
            ASSERT_EQ(qs.blocks, 0u);
            ASSERT_EQ(qs.xa_nodes, 0u);
            continue;
        }
        auto it = keys.find(qs.cpu);
        const std::set<std::uint64_t> none;
        const std::set<std::uint64_t>& ks = it == keys.end() ? none : it->second;
        ASSERT_EQ(qs.blocks, ks.size()) << "queue " << qs.cpu;
        ASSERT_EQ(qs.xa_nodes, vmap_test::radix_nodes(ks)) << "queue " << qs.cpu;
        ASSERT_EQ(qs.xa_height, ks.empty() ? 0u : vmap_test::radix_height(*ks.rbegin()));
    }
}

TEST_P(Allocator, StatsCountBlocksLocksAndTreeShape) {
    vmap::config c = make_config();
    c.page_shift = 8;
    mapper& m = make(c);
    ASSERT_NO_FATAL_FAILURE(expect_stats_match_formulas(m, GetParam()));
    EXPECT_EQ(m.a->stats().blocks_created, 0u);
    vmap::map_result r = m.map(cpus().front(), 1, 0);
    ASSERT_TRUE(r);
    vmap::allocator_stats st = m.a->stats();
    EXPECT_EQ(st.blocks_created, 1u);
    EXPECT_EQ(st.blocks_live, 1u);
    // The first block: key 0 (block index) is the head alone, height 0; the
    // v3 va_start key needs 11 levels.
    if (GetParam().key == vb_key::block_index) {
        EXPECT_EQ(st.xa_max_height, 0u);
        EXPECT_EQ(st.xa_nodes, 0u);
    } else {
        EXPECT_EQ(st.xa_max_height, 11u);
        EXPECT_EQ(st.xa_nodes, 11u);
    }
    EXPECT_GE(st.xa_lock.acquisitions, 1u);
    EXPECT_GE(st.vmap_area_lock.acquisitions, 1u);
    EXPECT_GE(st.vb_lock.acquisitions, 1u);
    EXPECT_GE(st.vbq_lock.acquisitions, 1u);
    for (int i = 0; i < 40; ++i)
        ASSERT_TRUE(m.map(cpus()[static_cast<std::size_t>(i) % cpus().size()], 64, 0));
    ASSERT_NO_FATAL_FAILURE(expect_stats_match_formulas(m, GetParam()));
    ASSERT_NO_FATAL_FAILURE(m.unmap_all());
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    ASSERT_NO_FATAL_FAILURE(expect_stats_match_formulas(m, GetParam()));
    m.a->reset_lock_stats();
    st = m.a->stats();
    EXPECT_EQ(st.xa_lock.acquisitions, 0u);
    EXPECT_EQ(st.vbq_lock.acquisitions, 0u);
    EXPECT_EQ(st.vb_lock.acquisitions, 0u);
    EXPECT_EQ(st.vmap_area_lock.acquisitions, 0u);
}

TEST_P(Allocator, VmapBlockVaddrWarnsOnceForAnOffsetOutsideTheBlock) {
    std::vector<std::string> warnings;
    vmap::config c = make_config();
    c.on_warn = vmap::warn_policy::handler;
    c.warn_handler = [&](const vmap::check_site&, const std::string& msg) {
        warnings.push_back(msg);
    };
    vmap::allocator a(c);
    std::byte page[4096];
    std::byte* p = page;
    vmap::cpu_binding bind(cpus().front());
    vmap::map_result r = a.vm_map_ram({&p, 1});
    ASSERT_TRUE(r);
    const unsigned long start = r.addr; // a fresh block's first page
    ASSERT_EQ(start % a.block_size(), 0u);
    for (unsigned long off : {0UL, 1UL, 17UL, static_cast<unsigned long>(bits(12)) - 1})
        EXPECT_EQ(a.vmap_block_vaddr(start, off), start + off * 4096);
    EXPECT_EQ(a.diag().warn_hits(), 0u);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(a.vmap_block_vaddr(start, bits(12)), start + bits(12) * 4096UL);
    EXPECT_EQ(a.vmap_block_vaddr(start, bits(12) + 5UL), start + (bits(12) + 5UL) * 4096);
    EXPECT_EQ(a.vmap_block_vaddr(start, 0), start);
    EXPECT_EQ(a.diag().warn_hits(), 2u);
    ASSERT_EQ(warnings.size(), 1u) << "WARN_ON_ONCE fired twice";
    EXPECT_NE(warnings[0].find("vmap_block_vaddr: page " + std::to_string(bits(12)) +
                               " is outside the block at " + vmap::vmap_area_allocator::hex(start)),
              std::string::npos)
        << warnings[0];
    vmap::site_record rec = a.diag().find("!= va_start");
    EXPECT_EQ(rec.hits, 2u);
    EXPECT_EQ(rec.fired, 1u);
    EXPECT_EQ(a.vm_unmap_ram(r.addr, 1), errc::ok);
}

TEST_P(Allocator, VreadAndTranslateAtTheEdges) {
    mapper& m = make();
    vmap::map_result r = m.map(cpus().front(), 3, 5);
    vmap::map_result big = m.map(cpus().front(), 80, 9);
    ASSERT_TRUE(r && big);
    const unsigned long start = m.a->vmalloc_start(), end = m.a->vmalloc_end();
    // Windows that straddle mappings, holes and the range's ends.
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(r.addr - 100, 4096 * 5 + 200));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(r.addr + 4095, 2));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(big.addr - 10, 80 * 4096 + 20));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(start - 4096, 8192));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(end - 4096, 8192));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(0, 100));
    ASSERT_NO_FATAL_FAILURE(m.expect_bytes(~0UL - 50, 40));
    EXPECT_EQ(m.a->translate(0), nullptr);
    EXPECT_EQ(m.a->translate(start - 1), nullptr);
    EXPECT_EQ(m.a->translate(end), nullptr);
    EXPECT_EQ(m.a->translate(r.addr + 3 * 4096), nullptr); // order-2 tail page
    EXPECT_EQ(m.a->translate(big.addr + 80 * 4096), nullptr);
    EXPECT_EQ(m.a->find_block(big.addr), nullptr) << "a large mapping is no block";
    EXPECT_EQ(m.a->find_block(start - 1), nullptr);
    EXPECT_EQ(m.a->find_block(end), nullptr);
}

// A random walk: map, unmap, vread, translate, vm_unmap_aliases and purges on
// random CPUs; check() after every step, the flush model and the stats.
TEST_P(Allocator, RandomWalkKeepsEveryInvariant) {
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0301);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    std::mt19937_64 rng(seed);
    vmap::config c = make_config();
    c.page_shift = 8; // 256-byte pages: the same walk, less copying under TSan
    mapper& m = make(c);
    const unsigned long ps = m.page();
    const std::vector<unsigned> cs = cpus();
    const unsigned threshold = m.a->purge_threshold();
    for (int step = 0; step < 300; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        unsigned cpu = cs[rng() % cs.size()];
        unsigned op = static_cast<unsigned>(rng() % 100);
        if (op < 45 || m.live.empty()) {
            std::size_t n = rng() % 10 == 0 ? 65 + rng() % 40 : 1 + rng() % (rng() % 2 ? 4 : 64);
            vmap::map_result r = m.map(cpu, n, rng() % m.pool.count());
            ASSERT_FALSE(HasFatalFailure());
            ASSERT_EQ(r.err, errc::ok);
        } else if (op < 85) {
            auto it = m.live.begin();
            std::advance(it, static_cast<long>(rng() % m.live.size()));
            vmap::cpu_binding b(cpu);
            ASSERT_NO_FATAL_FAILURE(m.unmap(it->first));
        } else if (op < 92) {
            // Which fragmented blocks a non-forced purge may take.
            std::map<unsigned long, bool> fragmented; // start -> purgeable
            {
                vmap::rcu::read_guard g;
                m.a->for_each_block([&](vmap::vmap_block* vb) {
                    std::lock_guard<vmap::spinlock> l(vb->lock);
                    unsigned f = vb->free.load(), d = vb->dirty.load();
                    if (f + d == bits(8) && d != bits(8))
                        fragmented[vb->va->va_start] = f < threshold;
                });
            }
            ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
            for (auto& [start, purgeable] : fragmented)
                EXPECT_EQ(m.a->find_block(start) == nullptr, purgeable)
                    << "block " << std::hex << start;
        } else if (op < 95) {
            m.a->purge_fragmented_blocks(cpu);
            m.drain();
        } else {
            auto it = m.live.begin();
            std::advance(it, static_cast<long>(rng() % m.live.size()));
            unsigned long from = it->first - ps + rng() % (3 * ps);
            ASSERT_NO_FATAL_FAILURE(m.expect_bytes(from, 1 + rng() % (3 * ps)));
            ASSERT_NO_FATAL_FAILURE(m.expect_translate(it->second));
        }
        ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
        ASSERT_NO_FATAL_FAILURE(expect_stats_match_formulas(m, GetParam()));
    }
    ASSERT_NO_FATAL_FAILURE(m.expect_all_intact());
    ASSERT_NO_FATAL_FAILURE(m.unmap_all());
    ASSERT_NO_FATAL_FAILURE(m.unmap_aliases());
    m.a->purge_fragmented_blocks_allcpus();
    m.drain();
    EXPECT_TRUE(m.blocks().empty()) << "no live mapping, yet blocks remain after purging";
    ASSERT_NO_FATAL_FAILURE(m.expect_check_clean());
}

INSTANTIATE_TEST_SUITE_P(Configs, Allocator, testing::ValuesIn(all_params()), param_name);

TEST(AllocatorDefaults, DefaultConfigurationWorks) {
    vmap::allocator a;
    EXPECT_EQ(a.cfg().scheme, vb_scheme::per_cpu_hashed);
    EXPECT_EQ(a.cfg().key, vb_key::block_index);
    EXPECT_EQ(a.cfg().on_bug, vmap::bug_policy::abort);
    EXPECT_FALSE(a.cpus().possible_cpus().empty());
    std::byte page[4096] = {};
    page[7] = std::byte{42};
    std::byte* p = page;
    vmap::map_result r = a.vm_map_ram({&p, 1}); // unbound: on some possible CPU
    ASSERT_TRUE(r);
    EXPECT_EQ(a.translate(r.addr + 7), page + 7);
    std::byte b{};
    a.vread(r.addr + 7, {&b, 1});
    EXPECT_EQ(b, std::byte{42});
    EXPECT_EQ(a.vm_unmap_ram(r.addr, 1), errc::ok);
    EXPECT_TRUE(a.check().empty());
}

} // namespace
