// SPDX-License-Identifier: MIT
// vmap/cpu.hpp: the CPU model - possible CPUs, per-CPU storage, current CPU.
//
// As in the kernel, the possible mask may be sparse ({0, 2, 5}) and
// nr_cpu_ids is the highest possible CPU + 1, so some indices below
// nr_cpu_ids are not CPUs at all. per_cpu<T> allocates storage for possible
// CPUs only; touching an impossible CPU's slot is a fatal, named error (the
// kernel would read uninitialised per-CPU memory: CVE-2024-41032).
//
// Which CPU an operation runs on is the caller's choice: a cpu_binding scope
// pins the calling thread to a simulated CPU, so tests and fuzzers are
// deterministic. Unbound threads use sched_getcpu(), folded onto the
// possible CPUs.
#pragma once

#include <sched.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <vmap/check.hpp>
#include <vmap/current.hpp>

namespace vmap {

class cpu_mask {
  public:
    cpu_mask() = default;
    cpu_mask(std::initializer_list<unsigned> cpus) {
        for (unsigned c : cpus)
            set(c);
    }
    static cpu_mask first_n(unsigned n) {
        cpu_mask m;
        for (unsigned c = 0; c < n; ++c)
            m.set(c);
        return m;
    }
    // The machine's CPUs, 0..n-1: the default possible mask. Read once:
    // std::thread::hardware_concurrency() reads sysfs on every call, and a
    // fuzzer builds a config per input.
    static const cpu_mask& this_machine() {
        static const cpu_mask m = first_n(std::max(1u, std::thread::hardware_concurrency()));
        return m;
    }
    // Bit i of `bits` is CPU i (fuzzers build masks from input bytes).
    static cpu_mask from_bits(std::uint64_t bits) {
        cpu_mask m;
        for (unsigned c = 0; bits; ++c, bits >>= 1)
            if (bits & 1)
                m.set(c);
        return m;
    }

    void set(unsigned cpu) {
        if (cpu / 64 >= words_.size())
            words_.resize(cpu / 64 + 1, 0);
        words_[cpu / 64] |= 1ULL << (cpu % 64);
    }
    bool test(unsigned cpu) const {
        return cpu / 64 < words_.size() && (words_[cpu / 64] >> (cpu % 64)) & 1;
    }
    unsigned count() const {
        unsigned n = 0;
        for (std::uint64_t w : words_)
            n += static_cast<unsigned>(std::popcount(w));
        return n;
    }
    bool empty() const { return count() == 0; }
    // Highest set CPU + 1 (0 for an empty mask).
    unsigned limit() const {
        for (std::size_t i = words_.size(); i-- > 0;)
            if (words_[i])
                return static_cast<unsigned>(i * 64 + 64 - std::countl_zero(words_[i]));
        return 0;
    }
    std::vector<unsigned> cpus() const {
        std::vector<unsigned> v;
        for (unsigned c = 0; c < limit(); ++c)
            if (test(c))
                v.push_back(c);
        return v;
    }
    std::string to_string() const {
        std::string s = "{";
        for (unsigned c : cpus())
            s += (s.size() > 1 ? "," : "") + std::to_string(c);
        return s + "}";
    }

  private:
    std::vector<std::uint64_t> words_;
};

// cpu_possible_mask, nr_cpu_ids, num_possible_cpus(), cpumask_next().
class cpu_topology {
  public:
    explicit cpu_topology(cpu_mask possible) : possible_(std::move(possible)) {
        if (possible_.empty())
            throw std::invalid_argument("vmap: the possible-CPU mask is empty");
        nr_cpu_ids_ = possible_.limit();
        list_ = possible_.cpus();
    }

    unsigned nr_cpu_ids() const { return nr_cpu_ids_; }
    unsigned num_possible() const { return static_cast<unsigned>(list_.size()); }
    bool possible(unsigned cpu) const { return possible_.test(cpu); }
    const std::vector<unsigned>& possible_cpus() const { return list_; }
    const cpu_mask& mask() const { return possible_; }

    // cpumask_next(cpu, possible): the first possible CPU above `cpu`, or
    // nr_cpu_ids if there is none.
    unsigned next_possible(unsigned cpu) const {
        for (unsigned c = cpu + 1; c < nr_cpu_ids_; ++c)
            if (possible_.test(c))
                return c;
        return nr_cpu_ids_;
    }

  private:
    cpu_mask possible_;
    unsigned nr_cpu_ids_ = 0;
    std::vector<unsigned> list_;
};

// DEFINE_PER_CPU(T, ...): one T per possible CPU, nothing for the others.
template <class T>
class per_cpu {
  public:
    template <class... Args>
    explicit per_cpu(const cpu_topology& topo, Args&&... args) {
        slots_.resize(topo.nr_cpu_ids());
        for (unsigned c : topo.possible_cpus())
            slots_[c] = std::make_unique<T>(args...);
    }

    // per_cpu(var, cpu): fatal for an impossible CPU, as the kernel's would
    // be undefined.
    T& operator[](unsigned cpu) const {
        VMAP_BUG(cpu >= slots_.size() || !slots_[cpu],
                 "per_cpu access to CPU " + std::to_string(cpu) +
                     ", which is not a possible CPU (nr_cpu_ids " + std::to_string(slots_.size()) +
                     ")");
        return *slots_[cpu];
    }
    bool exists(unsigned cpu) const { return cpu < slots_.size() && slots_[cpu]; }

  private:
    std::vector<std::unique_ptr<T>> slots_;
};

// Runs the rest of a scope "on" CPU `cpu` (the kernel's preempt-disabled
// region on one CPU). Scopes nest.
class cpu_binding {
  public:
    explicit cpu_binding(unsigned cpu) : prev_(current().bound_cpu) {
        current().bound_cpu = static_cast<int>(cpu);
    }
    ~cpu_binding() { current().bound_cpu = prev_; }
    cpu_binding(const cpu_binding&) = delete;
    cpu_binding& operator=(const cpu_binding&) = delete;

  private:
    int prev_;
};

// The simulated CPU the running task is bound to: -1 when not bound.
inline int bound_cpu() {
    return current().bound_cpu;
}

// raw_smp_processor_id() on `topo`: the bound CPU (fatal if not possible),
// else the real CPU when it is possible, else a possible CPU chosen by it.
inline unsigned current_cpu(const cpu_topology& topo) {
    int b = current().bound_cpu;
    if (b >= 0) {
        VMAP_BUG(!topo.possible(static_cast<unsigned>(b)),
                 "thread bound to CPU " + std::to_string(b) + ", which is not possible in " +
                     topo.mask().to_string());
        return static_cast<unsigned>(b);
    }
    int real = sched_getcpu();
    unsigned c = real < 0 ? 0U : static_cast<unsigned>(real);
    if (topo.possible(c))
        return c;
    return topo.possible_cpus()[c % topo.num_possible()];
}

} // namespace vmap
