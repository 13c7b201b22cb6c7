// SPDX-License-Identifier: MIT
// bench/bench_vmap.cpp: the hot path of vm_map_ram()/vm_unmap_ram() (issue 2).
//
//   BM_map_unmap_1page/<scheme>[_strict_off]/threads:T
//       T = 1 or 2 threads, thread i bound to simulated CPU i, one allocator
//       shared by all threads (possible mask first_n(2), record_tlb off;
//       config::strict on, the library's default, or off: the kernel's own
//       path, without the strict layer's checks and vb_free's RCU guard).
//       One iteration = vm_map_ram() of one page + vm_unmap_ram() of it. A
//       block fills and is freed every 256 pairs (256-page blocks, from
//       config::nr_cpus = 8192), its area freed lazily; that amortised cost
//       is part of the pair. vm_unmap_aliases() is never
//       called. Counters: the xa_lock(s)' contentions and acquisitions over
//       the whole run (allocator::stats()), and the vmap_area lock's.
//   BM_floor
//       The irreducible work of the kernel's pair, built from the library's
//       own primitives: three uncontended lock/unlock pairs of
//       vmap::spinlock (vb_alloc()'s, and vb_free()'s two sections, as the
//       kernel has them since issue 17 ported them), one vmap::rcu::read_guard
//       section (vb_alloc()'s walk), one hash ((addr >> block_shift) %
//       nr_cpu_ids through a fallback table, as addr_to_vb_cpu() does) and a
//       load from a 4-level vmap::xarray holding a real vmap_block (xa_load()
//       with its own RCU section).
//
// With threads, Google Benchmark's "Time" is the wall time of the run divided
// by the pairs of all threads (a throughput figure); one thread's own
// latency per pair is T times that.
//
// After the run the binary prints, for each pair benchmark, one thread's time
// per pair (Time x T) divided by BM_floor's time in the same run (medians
// when --benchmark_repetitions > 1).
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <vmap/vmap.hpp>

namespace {

constexpr unsigned bench_cpus = 2; // possible mask first_n(2)

vmap::config hot_path_config(vmap::vb_scheme scheme, bool strict) {
    vmap::config cfg;
    cfg.possible = vmap::cpu_mask::first_n(bench_cpus);
    cfg.scheme = scheme;
    cfg.strict = strict;
    cfg.record_tlb = false;
    return cfg;
}

// The allocator shared by the threads of one BM_map_unmap_1page run. Thread 0
// creates it before the timed loop and destroys it after; Google Benchmark
// starts no thread's loop before all have reached it and lets none leave
// before all have finished, so the other threads use it only in between.
std::unique_ptr<vmap::allocator> shared_allocator;

void BM_map_unmap_1page(benchmark::State& state, vmap::vb_scheme scheme, bool strict) {
    if (state.thread_index() == 0)
        shared_allocator = std::make_unique<vmap::allocator>(hot_path_config(scheme, strict));
    vmap::cpu_binding on(static_cast<unsigned>(state.thread_index()));
    alignas(4096) static thread_local std::byte page[4096];
    std::byte* const pages[1] = {page};

    for (auto _ : state) {
        vmap::allocator& a = *shared_allocator;
        vmap::map_result r = a.vm_map_ram(pages);
        if (!r) [[unlikely]] {
            state.SkipWithError(vmap::to_string(r.err));
            break;
        }
        vmap::errc e = a.vm_unmap_ram(r.addr, 1);
        if (e != vmap::errc::ok) [[unlikely]] {
            state.SkipWithError(vmap::to_string(e));
            break;
        }
    }

    if (state.thread_index() == 0) {
        vmap::allocator_stats st = shared_allocator->stats();
        auto total = [](std::uint64_t v) { return benchmark::Counter(static_cast<double>(v)); };
        state.counters["xa_contentions"] = total(st.xa_lock.contentions);
        state.counters["xa_acquisitions"] = total(st.xa_lock.acquisitions);
        state.counters["va_contentions"] = total(st.vmap_area_lock.contentions);
        state.counters["blocks"] = total(st.blocks_created);
        shared_allocator.reset();
    }
}

// Registered once per scheme and thread count; real time, since the threads
// of one run share the work.
#define VMAP_BENCH_PAIR(name, scheme, strict)                                                      \
    BENCHMARK_CAPTURE(BM_map_unmap_1page, name, vmap::vb_scheme::scheme, strict)                   \
        ->Threads(1)                                                                               \
        ->Threads(2)                                                                               \
        ->UseRealTime()

VMAP_BENCH_PAIR(per_cpu_hashed, per_cpu_hashed, true);
VMAP_BENCH_PAIR(global, global, true);
VMAP_BENCH_PAIR(per_cpu_hashed_strict_off, per_cpu_hashed, false);

// ---------------------------------------------------------------------------
// The floor.

struct floor_fixture {
    static constexpr unsigned block_shift = 22; // 1024 pages of 4 KiB
    // A realistic block index in 32 TiB of 4 MiB blocks (keys below 2^23):
    // 21 bits, so the xarray is 4 levels high.
    static constexpr std::uint64_t key = 0x12d687;
    unsigned long addr = vmap::default_vmalloc_start + (key << block_shift);
    unsigned nr_cpu_ids = bench_cpus;
    std::vector<unsigned> hash_fallback; // hash value -> queue, as the allocator's
    std::vector<std::unique_ptr<vmap::xarray<vmap::vmap_block>>> xas;
    vmap::vmap_block vb{1024};

    floor_fixture() {
        for (unsigned c = 0; c < nr_cpu_ids; ++c) {
            hash_fallback.push_back(c);
            xas.push_back(std::make_unique<vmap::xarray<vmap::vmap_block>>());
        }
        auto& xa = *xas[hash_fallback[(addr >> block_shift) % nr_cpu_ids]];
        if (xa.insert(key, &vb) != vmap::xa_insert_result::ok || xa.height() != 4)
            std::abort();
    }
    ~floor_fixture() {
        for (auto& xa : xas)
            xa->erase(key);
    }
};

// Makes the compiler forget what it knows of a scalar, so the hash is not
// folded to a constant. (benchmark::DoNotOptimize on a non-const lvalue uses
// a "+m,r" constraint that g++-12 miscompiles with libbenchmark 1.7.1: the
// pointer read back was garbage under the gcc preset. Results go through the
// const overload, an input-only constraint.)
template <class T>
inline void opaque(T& v) {
    static_assert(std::is_scalar_v<T>);
    asm volatile("" : "+r"(v));
}

void BM_floor(benchmark::State& state) {
    floor_fixture f;
    vmap::spinlock& lock = f.vb.lock;
    for (auto _ : state) {
        // vb_alloc: its RCU section around the walk, the block lock.
        {
            vmap::rcu::read_guard rcu;
            lock.lock();
            lock.unlock();
        }
        // vb_free: hash, xarray load, the block lock twice.
        {
            unsigned long addr = f.addr;
            unsigned nr = f.nr_cpu_ids;
            opaque(addr);
            opaque(nr);
            // allocator::hash_value(): a mask when nr_cpu_ids is a power of two.
            std::uint64_t b = addr >> floor_fixture::block_shift;
            unsigned q = f.hash_fallback[std::has_single_bit(nr) ? b & (nr - 1) : b % nr];
            vmap::vmap_block* const vb =
                f.xas[q]->load((addr - vmap::default_vmalloc_start) >> floor_fixture::block_shift);
            benchmark::DoNotOptimize(vb);
            vb->lock.lock();
            vb->lock.unlock();
            vb->lock.lock();
            vb->lock.unlock();
        }
    }
}
BENCHMARK(BM_floor);

// ---------------------------------------------------------------------------
// main: run as usual, then print each pair's time over the floor's.

class ratio_reporter : public benchmark::ConsoleReporter {
  public:
    using ConsoleReporter::ConsoleReporter;

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.error_occurred)
                continue;
            std::string name = r.run_name.str();
            if (r.run_type == Run::RT_Iteration)
                time_[name].runs.push_back(r.GetAdjustedRealTime());
            else if (r.aggregate_name == "median")
                time_[name].median = r.GetAdjustedRealTime();
        }
        ConsoleReporter::ReportRuns(runs);
    }

    void print_ratios() const {
        double floor_ns = time_of("BM_floor");
        if (!(floor_ns > 0))
            return;
        std::printf("\npair / floor, same run (medians when repeated); floor %.2f ns\n", floor_ns);
        std::printf("  %-52s %14s %16s %12s\n", "", "ns (wall/pairs)", "one thread's pair",
                    "pair/floor");
        for (const auto& [name, t] : time_) {
            if (name.rfind("BM_map_unmap_1page/", 0) != 0)
                continue;
            double ns = time_of(name);
            double pair = ns * threads_of(name); // one thread's own latency per pair
            if (ns > 0)
                std::printf("  %-52s %14.2f %16.2f %11.2fx\n", name.c_str(), ns, pair,
                            pair / floor_ns);
        }
    }

  private:
    struct times {
        std::vector<double> runs;
        double median = 0;
    };

    // The median aggregate if there is one, else the only run (0: none).
    double time_of(const std::string& name) const {
        auto it = time_.find(name);
        if (it == time_.end())
            return 0;
        if (it->second.median > 0)
            return it->second.median;
        return it->second.runs.size() == 1 ? it->second.runs.front() : 0;
    }
    static double threads_of(const std::string& name) {
        auto at = name.find("threads:");
        return at == std::string::npos ? 1.0 : std::stod(name.substr(at + 8));
    }

    std::map<std::string, times> time_;
};

bool console_output(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], "--benchmark_format=", 19) == 0)
            return std::strcmp(argv[i] + 19, "console") == 0;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    if (!console_output(argc, argv)) {
        benchmark::RunSpecifiedBenchmarks();
    } else {
        ratio_reporter rep(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Defaults
                                                 : benchmark::ConsoleReporter::OO_None);
        benchmark::RunSpecifiedBenchmarks(&rep);
        rep.print_ratios();
    }
    benchmark::Shutdown();
    return 0;
}
