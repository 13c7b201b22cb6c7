// SPDX-License-Identifier: MIT
// tests/test_threads.cpp: a multi-threaded smoke test of the allocator.
//
// Worker threads, each bound to a simulated CPU, map their own pages, read
// their own bytes back through vread() and translate(), and unmap, in random
// order; one more thread runs vm_unmap_aliases(), forced purges and reads of
// random addresses meanwhile. All start at one barrier. Afterwards check() must
// be empty and no block may be left once everything is unmapped and purged.
// Run under TSan and ASan; failures are collected and asserted on the main
// thread.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <vmap/vmap.hpp>

#include "test_support.hpp"

namespace {

struct thread_result {
    long maps = 0, unmaps = 0, reads = 0;
    std::vector<std::string> errors;
    void fail(std::string e) {
        if (errors.size() < 5)
            errors.push_back(std::move(e));
    }
};

struct smoke_param {
    const char* name;
    vmap::cpu_mask mask;
    std::vector<unsigned> worker_cpus;
    vmap::vb_scheme scheme;
};

void PrintTo(const smoke_param& p, std::ostream* os) {
    *os << p.name;
}

class Threads : public testing::TestWithParam<smoke_param> {};

void worker(vmap::allocator& a, unsigned cpu, std::uint64_t seed, int ops, std::barrier<>& go,
            thread_result& res) {
    vmap::cpu_binding bind(cpu);
    std::mt19937_64 rng(seed);
    const unsigned long ps = a.page_size();
    // Pages of our own, filled with a pattern of (seed, page).
    vmap_test::page_pool pool(96, ps, seed);
    struct live {
        unsigned long addr;
        std::size_t first, n;
    };
    std::vector<live> mine;
    std::vector<std::byte> buf;
    auto verify = [&](const live& l, const char* when) {
        buf.assign(l.n * ps, std::byte{0xee});
        a.vread(l.addr, buf);
        for (std::size_t i = 0; i < l.n; ++i)
            if (std::memcmp(buf.data() + i * ps, pool[(l.first + i) % pool.count()], ps) != 0) {
                res.fail(std::string(when) + ": vread of page " + std::to_string(i) + " of " +
                         vmap::vmap_area_allocator::hex(l.addr) + " is wrong");
                return;
            }
        std::size_t i = rng() % l.n;
        if (a.translate(l.addr + i * ps + 5) != pool[(l.first + i) % pool.count()] + 5)
            res.fail(std::string(when) + ": translate is wrong");
        ++res.reads;
    };
    go.arrive_and_wait();
    for (int op = 0; op < ops; ++op) {
        unsigned what = static_cast<unsigned>(rng() % 10);
        if (what < 5 || mine.empty()) {
            std::size_t n = rng() % 50 == 0 ? 65 + rng() % 8 : 1 + rng() % (rng() % 4 ? 4 : 64);
            std::size_t first = rng() % pool.count();
            std::vector<std::byte*> pages = pool.span(first, n);
            vmap::map_result r = a.vm_map_ram(pages);
            if (!r) {
                res.fail(std::string("vm_map_ram of ") + std::to_string(n) +
                         " pages: " + vmap::to_string(r.err));
                continue;
            }
            ++res.maps;
            mine.push_back({r.addr, first, n});
            verify(mine.back(), "after map");
        } else if (what < 9) {
            std::size_t k = rng() % mine.size();
            live l = mine[k];
            mine[k] = mine.back();
            mine.pop_back();
            verify(l, "before unmap");
            vmap::errc e = a.vm_unmap_ram(l.addr, static_cast<unsigned>(l.n));
            if (e != vmap::errc::ok)
                res.fail(std::string("vm_unmap_ram: ") + vmap::to_string(e));
            ++res.unmaps;
        } else {
            verify(mine[rng() % mine.size()], "later");
        }
    }
    for (const live& l : mine) {
        verify(l, "at the end");
        if (a.vm_unmap_ram(l.addr, static_cast<unsigned>(l.n)) != vmap::errc::ok)
            res.fail("final vm_unmap_ram failed");
        ++res.unmaps;
    }
}

TEST_P(Threads, MapReadUnmapOnEveryCpuWithConcurrentUnmapAliases) {
    const smoke_param& p = GetParam();
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0401);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    vmap::config c;
    c.possible = p.mask;
    c.scheme = p.scheme;
    c.bbmap_bits = 128; // small blocks: frequent block frees and purges
    c.page_shift = 8;   // small pages: cheap reads under TSan
    c.record_tlb = false;
    c.vmap_nodes = 0;       // one per possible CPU: the pools are in use
    c.lazy_max_pages = 128; // the drain work is due often
    vmap::allocator a(c);

    const int ops = 4000;
    const std::size_t n = p.worker_cpus.size();
    std::vector<thread_result> results(n);
    std::barrier<> go(static_cast<std::ptrdiff_t>(n + 1));
    std::atomic<int> running{static_cast<int>(n)};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            worker(a, p.worker_cpus[i], seed + 1 + i, ops, go, results[i]);
            running.fetch_sub(1);
        });
    long aliases = 0, purges = 0, probes = 0;
    std::thread flusher([&] {
        std::mt19937_64 rng(seed);
        const std::vector<unsigned> cpus = p.mask.cpus();
        std::vector<std::byte> buf(3 * a.page_size());
        go.arrive_and_wait();
        while (running.load() > 0) {
            a.vm_unmap_aliases();
            a.run_drain_work();
            if (aliases % 8 == 0)
                a.vmap_node_shrink_scan();
            ++aliases;
            if (aliases % 4 == 0) {
                a.purge_fragmented_blocks(cpus[rng() % cpus.size()]);
                ++purges;
            }
            // Lookups racing with the workers' frees: any result is fine, a
            // crash or a sanitizer report is not.
            for (int i = 0; i < 8; ++i) {
                unsigned long addr =
                    a.vmalloc_start() + rng() % (64 * a.block_size()) - rng() % 3 * 100;
                a.vread(addr, buf);
                (void)a.translate(addr);
                ++probes;
            }
        }
    });
    for (auto& t : threads)
        t.join();
    flusher.join();

    long maps = 0;
    for (std::size_t i = 0; i < n; ++i) {
        SCOPED_TRACE("worker " + std::to_string(i) + " on CPU " + std::to_string(p.worker_cpus[i]));
        EXPECT_TRUE(results[i].errors.empty()) << results[i].errors.front();
        EXPECT_EQ(results[i].maps, results[i].unmaps);
        EXPECT_GT(results[i].reads, 0);
        maps += results[i].maps;
    }
    EXPECT_GT(maps, static_cast<long>(n) * ops / 3);
    EXPECT_GT(aliases, 0);
    std::vector<std::string> problems = a.check();
    EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front();
    EXPECT_EQ(a.diag().warn_hits(), 0u);
    vmap::allocator_stats st = a.stats();
    EXPECT_EQ(st.blocks_live, st.blocks_created - st.blocks_freed);
    EXPECT_GT(st.blocks_freed, 0u);
    // Nothing is mapped: every block is fragmented or gone; a forced purge of
    // every CPU leaves none.
    a.purge_fragmented_blocks_allcpus();
    EXPECT_EQ(a.stats().blocks_live, 0u);
    problems = a.check();
    EXPECT_TRUE(problems.empty()) << problems.front();
    (void)purges;
    (void)probes;
}

INSTANTIATE_TEST_SUITE_P(Masks, Threads,
                         testing::Values(smoke_param{"first4_one_thread_per_cpu",
                                                     vmap::cpu_mask::first_n(4),
                                                     {0, 1, 2, 3},
                                                     vmap::vb_scheme::per_cpu_hashed},
                                         smoke_param{"sparse025_two_threads_share_cpu5",
                                                     vmap::cpu_mask{0, 2, 5},
                                                     {0, 5, 2, 5},
                                                     vmap::vb_scheme::per_cpu_hashed},
                                         smoke_param{"first4_global",
                                                     vmap::cpu_mask::first_n(4),
                                                     {0, 1, 2, 3},
                                                     vmap::vb_scheme::global}),
                         [](const testing::TestParamInfo<smoke_param>& i) {
                             return std::string(i.param.name);
                         });

} // namespace
