// SPDX-License-Identifier: MIT
// bench/bench_scaling.cpp: the seed's headline, reproduced (issue 8).
//
// BM_vm_map_ram_test/<workload>/<scheme>/<key>/threads:T
//   lib/test_vmalloc.c's vm_map_ram_test: T threads, thread i bound to
//   simulated CPU i of T possible CPUs (T = N, as on a T-CPU machine), one
//   allocator, each thread maps one page, writes one byte to it, unmaps it.
//   workload plain:  map, write, unmap, in a loop.
//   workload window: each thread keeps its last W pages mapped (default
//                    2400, about 2.3 blocks of 1024 pages) and unmaps the
//                    oldest as it maps a new one, so many blocks are live.
//   One iteration is one map + one unmap (the window's first W iterations
//   only map). The run has a fixed number of iterations in total (--ops,
//   split evenly over the threads), so global and hashed runs do the same
//   work and their lock counts compare directly.
//   Counters (whole run, from allocator::stats()): ops_per_s (iterations of
//   all threads / the wall time from the first thread's first iteration to
//   the end of the last thread's loop), acquisitions (_acq) and contentions
//   (_con) of the xa_lock(s), the vbq locks, the block locks and the
//   vmap_area lock, and blocks created.
//
// BM_lookup/<structure>/blocks:B
//   ns per vb_free() lookup of a live block by address, B live blocks on 64
//   possible CPUs, addresses visited in a fixed random order:
//     xa_<scheme>_<key>  the allocator's own path: hash + lock-free xarray
//                        load under RCU (allocator::find_block());
//     unordered_map, map keyed by the block index, without a lock (as a
//                        single-threaded lower bound), and
//     unordered_map_locked, map_locked: the same under a vmap::spinlock, the
//                        least a concurrent reader of these containers needs.
//
// Extra flags (before Google Benchmark's own): --ops=N (default 2097152),
// --window=W (default 2400), --max_threads=T (default 64).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <vmap/vmap.hpp>

namespace {

std::uint64_t total_ops = 2097152;
unsigned window_pages = 2400;
unsigned max_threads = 64;

enum class workload { plain, window };

const char* to_string(workload w) {
    return w == workload::plain ? "plain" : "window";
}

// Shared by the threads of one run: thread 0 sets it up before the timed
// loop and tears it down after. Google Benchmark starts no thread's loop
// before every thread has reached it and lets none leave before all have
// finished, so the other threads touch it only in between.
struct shared_run {
    std::unique_ptr<vmap::allocator> alloc;
    std::atomic<std::int64_t> first_start_ns{0}; // earliest first iteration
};
shared_run run;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void note_start(std::int64_t t) {
    std::int64_t cur = run.first_start_ns.load(std::memory_order_relaxed);
    while ((cur == 0 || t < cur) &&
           !run.first_start_ns.compare_exchange_weak(cur, t, std::memory_order_relaxed))
        ;
}

void BM_vm_map_ram_test(benchmark::State& state, workload wl, vmap::vb_scheme scheme,
                        vmap::vb_key key) {
    const unsigned threads = static_cast<unsigned>(state.threads());
    if (state.thread_index() == 0) {
        vmap::config cfg;
        cfg.possible = vmap::cpu_mask::first_n(threads);
        cfg.scheme = scheme;
        cfg.key = key;
        cfg.record_tlb = false;
        run.alloc = std::make_unique<vmap::allocator>(cfg);
        run.first_start_ns.store(0, std::memory_order_relaxed);
    }
    vmap::cpu_binding on(static_cast<unsigned>(state.thread_index()));
    auto page = std::make_unique<std::byte[]>(4096);
    std::byte* const pages[1] = {page.get()};
    std::vector<unsigned long> ring(wl == workload::window ? window_pages : 0);
    std::size_t pos = 0, live = 0;
    bool first = true;

    for (auto _ : state) {
        if (first) [[unlikely]] {
            first = false;
            note_start(now_ns());
        }
        vmap::allocator& a = *run.alloc;
        if (wl == workload::window && live == ring.size()) {
            if (a.vm_unmap_ram(ring[pos], 1) != vmap::errc::ok) [[unlikely]] {
                state.SkipWithError("vm_unmap_ram failed");
                break;
            }
            --live;
        }
        vmap::map_result r = a.vm_map_ram(pages);
        if (!r) [[unlikely]] {
            state.SkipWithError(vmap::to_string(r.err));
            break;
        }
        pages[0][0] = static_cast<std::byte>(r.addr >> 12); // write one byte
        if (wl == workload::plain) {
            if (a.vm_unmap_ram(r.addr, 1) != vmap::errc::ok) [[unlikely]] {
                state.SkipWithError("vm_unmap_ram failed");
                break;
            }
        } else {
            ring[pos] = r.addr;
            pos = (pos + 1) % ring.size();
            ++live;
        }
    }

    if (state.thread_index() == 0) {
        // Every thread has left its loop; the window's mappings stay until
        // the allocator goes (its destructor frees every block).
        double wall_s = static_cast<double>(now_ns() - run.first_start_ns.load()) * 1e-9;
        vmap::allocator_stats st = run.alloc->stats();
        auto c = [](std::uint64_t v) { return benchmark::Counter(static_cast<double>(v)); };
        double ops = static_cast<double>(state.iterations()) * threads;
        state.counters["ops_per_s"] = benchmark::Counter(wall_s > 0 ? ops / wall_s : 0);
        state.counters["xa_acq"] = c(st.xa_lock.acquisitions);
        state.counters["xa_con"] = c(st.xa_lock.contentions);
        state.counters["vbq_acq"] = c(st.vbq_lock.acquisitions);
        state.counters["vbq_con"] = c(st.vbq_lock.contentions);
        state.counters["vb_acq"] = c(st.vb_lock.acquisitions);
        state.counters["vb_con"] = c(st.vb_lock.contentions);
        state.counters["va_acq"] = c(st.vmap_area_lock.acquisitions);
        state.counters["va_con"] = c(st.vmap_area_lock.contentions);
        state.counters["blocks"] = c(st.blocks_created);
        state.counters["cpus"] = c(threads);
        run.alloc.reset();
    }
}

// ---------------------------------------------------------------------------
// Lookup cost.

constexpr unsigned lookup_cpus = 64;

// B live, full blocks (64-page mappings, 16 a block) spread over the CPUs in
// turn, as a steady state of the window workload leaves them.
std::unique_ptr<vmap::allocator> allocator_with_blocks(vmap::vb_scheme scheme, vmap::vb_key key,
                                                       unsigned blocks,
                                                       std::vector<unsigned long>& starts,
                                                       std::vector<std::byte>& page) {
    vmap::config cfg;
    cfg.possible = vmap::cpu_mask::first_n(lookup_cpus);
    cfg.scheme = scheme;
    cfg.key = key;
    cfg.record_tlb = false;
    auto a = std::make_unique<vmap::allocator>(cfg);
    page.assign(a->page_size(), std::byte{0});
    std::vector<std::byte*> pages(a->max_alloc(), page.data());
    unsigned per_block = a->bbmap_bits() / a->max_alloc();
    starts.clear();
    for (unsigned b = 0; b < blocks; ++b) {
        vmap::cpu_binding on(b % lookup_cpus);
        for (unsigned m = 0; m < per_block; ++m) {
            vmap::map_result r = a->vm_map_ram(pages);
            if (!r)
                return nullptr;
            if (m == 0)
                starts.push_back(r.addr);
        }
    }
    return a;
}

// The addresses looked up: one page inside each live block, in a fixed
// random order.
std::vector<unsigned long> lookup_order(std::vector<unsigned long> starts, unsigned long page) {
    std::mt19937_64 rng(42);
    for (unsigned long& s : starts)
        s += (rng() % 1024) * page;
    std::shuffle(starts.begin(), starts.end(), rng);
    return starts;
}

void BM_lookup_xarray(benchmark::State& state, vmap::vb_scheme scheme, vmap::vb_key key) {
    std::vector<unsigned long> starts;
    std::vector<std::byte> page;
    auto a =
        allocator_with_blocks(scheme, key, static_cast<unsigned>(state.range(0)), starts, page);
    if (!a) {
        state.SkipWithError("could not create the blocks");
        return;
    }
    std::vector<unsigned long> order = lookup_order(starts, a->page_size());
    std::size_t i = 0;
    for (auto _ : state) {
        vmap::vmap_block* vb = a->find_block(order[i]);
        benchmark::DoNotOptimize(vb);
        if (++i == order.size())
            i = 0;
    }
    auto st = a->stats();
    state.counters["xa_nodes"] = static_cast<double>(st.xa_nodes);
    state.counters["xa_height"] = st.xa_max_height;
}

template <class Map, bool Locked>
void BM_lookup_std(benchmark::State& state) {
    std::vector<unsigned long> starts;
    std::vector<std::byte> page;
    auto a = allocator_with_blocks(vmap::vb_scheme::global, vmap::vb_key::block_index,
                                   static_cast<unsigned>(state.range(0)), starts, page);
    if (!a) {
        state.SkipWithError("could not create the blocks");
        return;
    }
    Map m;
    for (unsigned long s : starts)
        m.emplace(a->addr_to_vb_idx(s), a->find_block(s));
    std::vector<unsigned long> order = lookup_order(starts, a->page_size());
    const unsigned long base = a->vmalloc_start() & ~(a->block_size() - 1);
    const unsigned shift = static_cast<unsigned>(std::countr_zero(a->block_size()));
    vmap::spinlock lock{"map lock"};
    std::size_t i = 0;
    for (auto _ : state) {
        std::uint64_t idx = (order[i] - base) >> shift; // addr_to_vb_idx()
        vmap::vmap_block* vb;
        if constexpr (Locked) {
            std::lock_guard<vmap::spinlock> g(lock);
            auto it = m.find(idx);
            vb = it == m.end() ? nullptr : it->second;
        } else {
            auto it = m.find(idx);
            vb = it == m.end() ? nullptr : it->second;
        }
        benchmark::DoNotOptimize(vb);
        if (++i == order.size())
            i = 0;
    }
}

using umap = std::unordered_map<std::uint64_t, vmap::vmap_block*>;
using omap = std::map<std::uint64_t, vmap::vmap_block*>;

void register_all() {
    struct cfg_t {
        vmap::vb_scheme scheme;
        vmap::vb_key key;
    };
    // Global and hashed side by side for each key (global has no dense key:
    // it would be its block index).
    const cfg_t configs[] = {
        {vmap::vb_scheme::global, vmap::vb_key::block_index},
        {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::block_index},
        {vmap::vb_scheme::global, vmap::vb_key::va_start},
        {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::va_start},
        {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::dense},
    };
    for (workload wl : {workload::window, workload::plain})
        for (unsigned t = 1; t <= max_threads; t *= 2)
            for (const cfg_t& c : configs) {
                std::string name = std::string("BM_vm_map_ram_test/") + to_string(wl) + "/" +
                                   vmap::to_string(c.scheme) + "/" + vmap::to_string(c.key);
                benchmark::RegisterBenchmark(name.c_str(), BM_vm_map_ram_test, wl, c.scheme, c.key)
                    ->Threads(static_cast<int>(t))
                    ->Iterations(static_cast<benchmark::IterationCount>(
                        std::max<std::uint64_t>(1, total_ops / t)))
                    ->UseRealTime();
            }
    for (const cfg_t& c : configs) {
        std::string name =
            std::string("BM_lookup/xa_") + vmap::to_string(c.scheme) + "_" + vmap::to_string(c.key);
        benchmark::RegisterBenchmark(name.c_str(), BM_lookup_xarray, c.scheme, c.key)
            ->ArgName("blocks")
            ->Arg(192)
            ->Arg(4096);
    }
    benchmark::RegisterBenchmark("BM_lookup/unordered_map", BM_lookup_std<umap, false>)
        ->ArgName("blocks")
        ->Arg(192)
        ->Arg(4096);
    benchmark::RegisterBenchmark("BM_lookup/map", BM_lookup_std<omap, false>)
        ->ArgName("blocks")
        ->Arg(192)
        ->Arg(4096);
    benchmark::RegisterBenchmark("BM_lookup/unordered_map_locked", BM_lookup_std<umap, true>)
        ->ArgName("blocks")
        ->Arg(192)
        ->Arg(4096);
    benchmark::RegisterBenchmark("BM_lookup/map_locked", BM_lookup_std<omap, true>)
        ->ArgName("blocks")
        ->Arg(192)
        ->Arg(4096);
}

// Takes our own --name=value flags out of argv.
bool take_flag(int& argc, char** argv, const char* name, std::uint64_t& out) {
    std::size_t n = std::strlen(name);
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], name, n) != 0 || argv[i][n] != '=')
            continue;
        char* end = nullptr;
        out = std::strtoull(argv[i] + n + 1, &end, 10);
        if (!end || *end || out == 0) {
            std::fprintf(stderr, "%s: bad value\n", argv[i]);
            std::exit(2);
        }
        for (int j = i; j + 1 < argc; ++j)
            argv[j] = argv[j + 1];
        --argc;
        return true;
    }
    return false;
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t v = 0;
    if (take_flag(argc, argv, "--ops", v))
        total_ops = v;
    if (take_flag(argc, argv, "--window", v))
        window_pages = static_cast<unsigned>(v);
    if (take_flag(argc, argv, "--max_threads", v))
        max_threads = static_cast<unsigned>(std::min<std::uint64_t>(v, 1024));
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
