// SPDX-License-Identifier: MIT
// tests/stress_threads.cpp: free-running threads, no scheduler - the other
// half of the concurrency story (fuzz/vmap_threads steers interleavings;
// this lets the OS pick them). Meant for the tsan preset; cheap enough for
// asan too. Threads start together from one latch, to meet in the locks.
//
//   RandomOps      each thread runs a seeded random operation list on its
//                  own mappings (half the threads bound to simulated CPUs,
//                  half on whatever real CPU runs them), checking each
//                  result; then check(), every mapping, and a full drain.
//   VmMapRamTest   lib/test_vmalloc.c's vm_map_ram_test: map n pages,
//                  write one byte, read it back, unmap, in a loop.
// Seeds: VMAP_STRESS_SEED (default: time), printed; VMAP_STRESS_OPS scales.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness/checks.hpp"

namespace {

std::uint64_t seed_from_env() {
    if (const char* s = std::getenv("VMAP_STRESS_SEED"))
        return std::strtoull(s, nullptr, 0);
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

unsigned ops_from_env(unsigned dflt) {
    if (const char* s = std::getenv("VMAP_STRESS_OPS"))
        return static_cast<unsigned>(std::strtoul(s, nullptr, 0));
    return dflt;
}

struct stress_config {
    const char* name;
    vmap::cpu_mask mask;
    vmap::vb_scheme scheme;
    unsigned long blocks; // range size in blocks; 0: the full range
};

class Stress : public ::testing::TestWithParam<stress_config> {};

TEST_P(Stress, RandomOps) {
    const stress_config& sc = GetParam();
    std::uint64_t seed = seed_from_env();
    SCOPED_TRACE("VMAP_STRESS_SEED=" + std::to_string(seed));
    std::printf("RandomOps/%s: VMAP_STRESS_SEED=%llu\n", sc.name,
                static_cast<unsigned long long>(seed));
    vmap::config cfg;
    cfg.possible = sc.mask;
    cfg.scheme = sc.scheme;
    cfg.page_shift = 8;
    cfg.bbmap_bits = 128;
    if (sc.blocks)
        cfg.vmalloc_size = sc.blocks * (128UL << 8);
    cfg.on_warn = vmap::warn_policy::abort;
    cfg.record_tlb = false;
    cfg.vmap_nodes = 0;       // one per possible CPU: the pools are in use
    cfg.lazy_max_pages = 256; // the drain work is due often
    vmap::allocator a(cfg);

    const unsigned nthreads = 4;
    const unsigned ops = ops_from_env(4000);
    std::vector<std::unique_ptr<harness::model>> models;
    std::vector<std::string> errors(nthreads);
    for (unsigned t = 0; t < nthreads; ++t)
        models.push_back(std::make_unique<harness::model>(a.page_size(), a.max_alloc()));
    std::latch start(nthreads);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < nthreads; ++t)
        threads.emplace_back([&, t] {
            std::unique_ptr<vmap::cpu_binding> bind;
            const auto& cpus = a.cpus().possible_cpus();
            if (t % 2 == 0) // the others run wherever the OS puts them
                bind = std::make_unique<vmap::cpu_binding>(cpus[t % cpus.size()]);
            std::mt19937_64 rng(seed + t);
            harness::model& m = *models[t];
            start.arrive_and_wait();
            for (unsigned i = 0; i < ops && errors[t].empty(); ++i) {
                unsigned r = rng() % 100;
                std::string e;
                if (r < 45 || m.live_count() == 0) {
                    unsigned count = r % 7 == 0 ? 65 + rng() % 40 : 1 + rng() % 16;
                    auto mp = m.prepare(count, static_cast<std::uint8_t>(rng()));
                    vmap::map_result res = a.vm_map_ram(mp->pages);
                    if (!res) {
                        if (res.err != vmap::errc::no_space)
                            e = std::string("vm_map_ram: ") + vmap::to_string(res.err);
                        continue;
                    }
                    vmap::vmap_block* vb = nullptr;
                    e = harness::check_new_mapping(a, m, res.addr, count, vb);
                    mp->addr = res.addr;
                    mp->block = vb;
                    m.commit(std::move(mp));
                } else if (r < 85) {
                    unsigned h = static_cast<unsigned>(rng());
                    harness::mapping& mp = m.at(h);
                    e = harness::check_resolves(a, m, mp);
                    if (e.empty() && a.vm_unmap_ram(mp.addr, mp.count) != vmap::errc::ok)
                        e = "vm_unmap_ram of a live mapping failed";
                    m.remove(h);
                } else if (r < 95) {
                    const harness::mapping& mp = m.at(static_cast<unsigned>(rng()));
                    e = harness::check_vread(a, m, mp.addr, mp.count * a.page_size());
                } else if (r < 97) {
                    a.vm_unmap_aliases();
                } else if (r < 98) {
                    a.run_drain_work(); // this thread is the drain worker now
                } else if (r < 99 && t == 1) {
                    a.vmap_node_shrink_scan();
                } else {
                    a.purge_fragmented_blocks_allcpus();
                }
                if (!e.empty())
                    errors[t] =
                        "thread " + std::to_string(t) + " op " + std::to_string(i) + ": " + e;
            }
        });
    for (std::thread& th : threads)
        th.join();
    for (const std::string& e : errors)
        ASSERT_TRUE(e.empty()) << e;
    ASSERT_EQ(harness::check_audit(a), "");
    for (auto& m : models) {
        for (const auto& mp : m->live()) {
            ASSERT_EQ(harness::check_resolves(a, *m, *mp), "");
            ASSERT_EQ(harness::check_vread(a, *m, mp->addr, mp->count * a.page_size()), "");
            ASSERT_EQ(a.vm_unmap_ram(mp->addr, mp->count), vmap::errc::ok);
        }
    }
    ASSERT_EQ(harness::check_drained(a), "");
}

// lib/test_vmalloc.c, vm_map_ram_test: every thread maps n pages, writes a
// byte, unmaps, in a loop.
TEST_P(Stress, VmMapRamTest) {
    const stress_config& sc = GetParam();
    vmap::config cfg;
    cfg.possible = sc.mask;
    cfg.scheme = sc.scheme;
    cfg.on_warn = vmap::warn_policy::abort;
    cfg.record_tlb = false;
    cfg.vmap_nodes = 0;       // one per possible CPU: the pools are in use
    cfg.lazy_max_pages = 256; // the drain work is due often
    vmap::allocator a(cfg);
    const unsigned nthreads = 4, loops = ops_from_env(4000) * 2;
    std::vector<std::string> errors(nthreads);
    std::latch start(nthreads);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < nthreads; ++t)
        threads.emplace_back([&, t] {
            const unsigned n = 1 + t % 4; // test_vmalloc maps a few pages
            std::vector<std::byte> buf(n * a.page_size());
            std::vector<std::byte*> pages;
            for (unsigned p = 0; p < n; ++p)
                pages.push_back(buf.data() + p * a.page_size());
            start.arrive_and_wait();
            for (unsigned i = 0; i < loops && errors[t].empty(); ++i) {
                vmap::map_result r = a.vm_map_ram(pages);
                if (!r) {
                    errors[t] = std::string("vm_map_ram: ") + vmap::to_string(r.err);
                    break;
                }
                std::byte v = static_cast<std::byte>(i + t);
                std::byte* p = a.translate(r.addr + (n - 1) * a.page_size());
                if (p != pages[n - 1]) {
                    errors[t] = "translate does not reach the mapped page";
                    break;
                }
                *p = v;
                std::byte back{};
                a.vread(r.addr + (n - 1) * a.page_size(), {&back, 1});
                if (back != v)
                    errors[t] = "vread does not see the byte written";
                if (a.vm_unmap_ram(r.addr, n) != vmap::errc::ok)
                    errors[t] = "vm_unmap_ram failed";
            }
        });
    for (std::thread& th : threads)
        th.join();
    for (const std::string& e : errors)
        ASSERT_TRUE(e.empty()) << e;
    ASSERT_EQ(harness::check_drained(a), "");
}

INSTANTIATE_TEST_SUITE_P(
    Configs, Stress,
    ::testing::Values(
        stress_config{"four_cpus", vmap::cpu_mask::first_n(4), vmap::vb_scheme::per_cpu_hashed, 0},
        stress_config{"sparse_0_2_5", vmap::cpu_mask{0, 2, 5}, vmap::vb_scheme::per_cpu_hashed, 0},
        stress_config{"global", vmap::cpu_mask::first_n(4), vmap::vb_scheme::global, 0},
        stress_config{"small_range", vmap::cpu_mask{0, 1}, vmap::vb_scheme::per_cpu_hashed, 6}),
    [](const auto& info) { return std::string(info.param.name); });

} // namespace
