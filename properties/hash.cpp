// SPDX-License-Identifier: MIT
// properties/hash.cpp - property 4: the address hash addr_to_vb_xa().
//
//   one queue per block: every address of a block hashes to the same queue
//     (and key, and xarray);
//   always possible: the queue is a possible CPU whatever the mask
//     (CVE-2024-41032: % num_possible_cpus() named CPU 1 of {0, 2});
//   fair: over blocks spread uniformly over the range, each possible queue
//     gets its exact expected share, computed here from the mask alone:
//     a block's hash value h = (addr / VMAP_BLOCK_SIZE) % nr_cpu_ids is
//     uniform over 0 .. nr_cpu_ids-1, and h goes to h if h is possible,
//     else to the next possible CPU above h. So queue q's share is
//         p_q = |{h : h -> q}| / nr_cpu_ids,
//     1/num_possible for a dense mask; with a sparse mask a queue right
//     above a gap gets 2 or more hash values ({0, 2}: 1/3 and 2/3).
//     - exactly, over any run of k * nr_cpu_ids consecutive blocks: queue q
//       gets k * |{h : h -> q}| of them;
//     - statistically, over N = 65536 blocks drawn uniformly from the whole
//       range: |count_q - N p_q| <= t_q for every queue, where t_q solves
//       Bernstein's inequality P(|X - Np| >= t) <= 2 exp(-t^2 / (2 (Np(1-p)
//       + t/3))) for a bound of 1e-12. A correct hash fails it with
//       probability below 1e-12 per queue (about 1e-7 over a million runs
//       of 500 cases of up to 130 queues): a rigorous bound, not a normal
//       approximation, so the property does not flake. A hash that moves
//       one hash value (1/nr_cpu_ids of the blocks) to the wrong queue
//       misses it for every nr_cpu_ids up to 868 (t_q is about 7.8
//       standard deviations).
//   dense keys (vb_key::dense, ours, see allocator.hpp): for block index i
//     and queue q with n_q hash values, key = (i / nr_cpu_ids) * n_q +
//     rank_q(h). Over any complete run of blocks [p nr, (p + 1) nr) queue q
//     gets exactly the keys p n_q .. p n_q + n_q - 1, each once; runs are
//     disjoint key ranges, so no two blocks of a queue share a key - with
//     sparse masks too, where one queue takes several hash values. n_q is
//     computed here from the mask alone; VMALLOC_START is shifted by any
//     number of blocks modulo nr_cpu_ids, which changes which hash value
//     block index 0 has. In the global scheme the dense key is the block
//     index.
#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

namespace {

struct mask_draw {
    std::set<unsigned> cpus;
};

void showValue(const mask_draw& m, std::ostream& os) {
    os << "possible CPUs {";
    const char* sep = "";
    for (unsigned c : m.cpus) {
        os << sep << c;
        sep = ",";
    }
    os << "}";
}

// Any mask: dense ones, sparse ones, CPUs above 64.
rc::Gen<mask_draw> gen_mask() {
    auto from_bits = rc::gen::map(rc::gen::arbitrary<std::uint64_t>(), [](std::uint64_t b) {
        mask_draw m;
        for (unsigned c = 0; c < 64; ++c)
            if (b >> c & 1)
                m.cpus.insert(c);
        return m;
    });
    auto few = rc::gen::map(rc::gen::container<std::set<unsigned>>(rc::gen::inRange(0u, 130u)),
                            [](std::set<unsigned> s) { return mask_draw{std::move(s)}; });
    auto dense = rc::gen::map(rc::gen::inRange(1u, 65u), [](unsigned n) {
        mask_draw m;
        for (unsigned c = 0; c < n; ++c)
            m.cpus.insert(c);
        return m;
    });
    auto shapes =
        rc::gen::map(rc::gen::elementOf(std::vector<std::vector<unsigned>>{
                         {0, 2}, {0, 2, 5}, {1}, {3, 7}, {0, 1, 2, 5}, {0, 63}, {5, 6, 7, 64}}),
                     [](const std::vector<unsigned>& v) {
                         return mask_draw{{v.begin(), v.end()}};
                     });
    return rc::gen::suchThat(
        rc::gen::weightedOneOf<mask_draw>({{2, from_bits}, {2, few}, {1, dense}, {2, shapes}}),
        [](const mask_draw& m) { return !m.cpus.empty(); });
}

vmap::config make_config(const mask_draw& m, unsigned bits, bool va_start_key) {
    vmap::config cfg;
    cfg.possible = vmap::cpu_mask{};
    for (unsigned c : m.cpus)
        cfg.possible.set(c);
    cfg.scheme = vmap::vb_scheme::per_cpu_hashed;
    cfg.key = va_start_key ? vmap::vb_key::va_start : vmap::vb_key::block_index;
    cfg.bbmap_bits = bits;
    return cfg; // the default range: 32 TiB at 0xffffc90000000000
}

struct drawn {
    mask_draw mask;
    unsigned bits;
    bool va_start_key;
};

drawn draw() {
    drawn d;
    d.mask = *gen_mask();
    d.bits = *rc::gen::element(128u, 256u, 512u, 1024u);
    d.va_start_key = *rc::gen::arbitrary<bool>();
    return d;
}

// The number of hash values h in 0 .. nr_cpu_ids-1 that go to each queue:
// h itself if possible, else the next possible CPU above h.
std::map<unsigned, unsigned long> preimage_sizes(const mask_draw& m) {
    unsigned nr = *m.cpus.rbegin() + 1;
    std::map<unsigned, unsigned long> n;
    for (unsigned c : m.cpus)
        n[c] = 0;
    for (unsigned h = 0; h < nr; ++h)
        ++n[*m.cpus.lower_bound(h)];
    return n;
}

unsigned long first_block(const vmap::allocator& a) {
    return (a.vmalloc_start() + a.block_size() - 1) & ~(a.block_size() - 1);
}
unsigned long block_count(const vmap::allocator& a) {
    return (a.vmalloc_end() - first_block(a)) / a.block_size();
}

} // namespace

RC_GTEST_PROP(hash, every_address_of_a_block_hashes_to_one_possible_queue, ()) {
    drawn d = draw();
    vmap::allocator a(make_config(d.mask, d.bits, d.va_start_key));
    unsigned long block = first_block(a) + *rc::gen::inRange(0UL, block_count(a)) * a.block_size();
    unsigned q = a.addr_to_vb_cpu(block);
    RC_ASSERT(a.cpus().possible(q));
    vmap::xarray<vmap::vmap_block>* xa = &a.addr_to_vb_xa(block);
    RC_ASSERT(xa == &a.queue(q).vmap_blocks);
    std::uint64_t key = a.addr_to_vb_idx(block);
    std::vector<unsigned long> offsets =
        *rc::gen::container<std::vector<unsigned long>>(rc::gen::inRange(0UL, a.block_size()));
    offsets.push_back(a.block_size() - 1); // the block's last byte
    for (unsigned long off : offsets) {
        unsigned long addr = block + off;
        RC_ASSERT(a.addr_to_vb_cpu(addr) == q);
        RC_ASSERT(&a.addr_to_vb_xa(addr) == xa);
        RC_ASSERT(a.addr_to_vb_idx(addr) == key);
    }
}

RC_GTEST_PROP(hash, the_queue_is_a_possible_cpu_for_any_mask, ()) {
    drawn d = draw();
    vmap::allocator a(make_config(d.mask, d.bits, d.va_start_key));
    // Every hash value occurs among nr_cpu_ids consecutive blocks; add random ones.
    unsigned long n = block_count(a);
    unsigned long start = *rc::gen::inRange(0UL, n - a.cpus().nr_cpu_ids());
    std::vector<unsigned long> blocks;
    for (unsigned long i = 0; i < a.cpus().nr_cpu_ids(); ++i)
        blocks.push_back(start + i);
    for (unsigned long b :
         *rc::gen::container<std::vector<unsigned long>>(rc::gen::inRange(0UL, n)))
        blocks.push_back(b);
    for (unsigned long b : blocks) {
        unsigned long addr = first_block(a) + b * a.block_size();
        unsigned q = a.addr_to_vb_cpu(addr);
        if (!a.cpus().possible(q))
            RC_FAIL("block " + props::hex(addr) + " hashes to CPU " + std::to_string(q) +
                    ", which is not possible in " + a.cpus().mask().to_string());
    }
}

RC_GTEST_PROP(hash, consecutive_blocks_spread_exactly_by_the_fallback, ()) {
    drawn d = draw();
    vmap::allocator a(make_config(d.mask, d.bits, d.va_start_key));
    unsigned long nr = a.cpus().nr_cpu_ids();
    unsigned long k = *rc::gen::inRange(1UL, 4UL);
    unsigned long start = *rc::gen::inRange(0UL, block_count(a) - k * nr);
    std::map<unsigned, unsigned long> got;
    for (unsigned long i = 0; i < k * nr; ++i)
        ++got[a.addr_to_vb_cpu(first_block(a) + (start + i) * a.block_size())];
    for (auto& [q, pre] : preimage_sizes(d.mask)) {
        RC_ASSERT(got[q] == k * pre);
        got.erase(q);
    }
    RC_ASSERT(got.empty()); // nothing went to a queue that is not possible
}

// The t of Bernstein's inequality for n draws of probability p and failure
// bound `delta`: the positive root of t^2 = 2 L (n p (1 - p) + t / 3),
// L = ln(2 / delta).
double bernstein_tolerance(double n, double p, double delta) {
    double L = std::log(2 / delta);
    double var = n * p * (1 - p);
    double b = 2 * L / 3;
    return (b + std::sqrt(b * b + 8 * L * var)) / 2;
}

RC_GTEST_PROP(hash, uniformly_spread_blocks_are_fair_within_a_bernstein_bound, ()) {
    drawn d = draw();
    vmap::allocator a(make_config(d.mask, d.bits, d.va_start_key));
    // The sample: N blocks uniform over the range, from a drawn seed (the
    // values themselves would make RapidCheck's counterexample unreadable).
    constexpr unsigned long N = 65536;
    std::mt19937_64 rng(*rc::gen::arbitrary<std::uint64_t>());
    std::uniform_int_distribution<unsigned long> pick(0, block_count(a) - 1);
    std::map<unsigned, unsigned long> got;
    for (unsigned long i = 0; i < N; ++i)
        ++got[a.addr_to_vb_cpu(first_block(a) + pick(rng) * a.block_size())];
    double nr = a.cpus().nr_cpu_ids();
    for (auto& [q, pre] : preimage_sizes(d.mask)) {
        double p = static_cast<double>(pre) / nr;
        double want = N * p;
        double tol = bernstein_tolerance(N, p, 1e-12);
        double count = static_cast<double>(got[q]);
        if (std::fabs(count - want) > tol)
            RC_FAIL("queue " + std::to_string(q) + " got " + std::to_string(got[q]) + " of " +
                    std::to_string(N) + " blocks; expected " + std::to_string(want) + " +- " +
                    std::to_string(tol) + " (" + std::to_string(pre) + " of " +
                    std::to_string(a.cpus().nr_cpu_ids()) + " hash values)");
        got.erase(q);
    }
    RC_ASSERT(got.empty());
}

RC_GTEST_PROP(hash, dense_keys_fill_each_queue_once_per_run_of_blocks, ()) {
    mask_draw m = *gen_mask();
    vmap::config cfg = make_config(m, *rc::gen::element(128u, 256u, 512u, 1024u), false);
    cfg.key = vmap::vb_key::dense;
    const unsigned nr = *m.cpus.rbegin() + 1;
    const unsigned long block = static_cast<unsigned long>(cfg.bbmap_bits) << cfg.page_shift;
    // Shift the range by 0 .. nr-1 blocks, and maybe off block alignment.
    cfg.vmalloc_start += *rc::gen::inRange(0u, nr) * block +
                         (*rc::gen::arbitrary<bool>() ? (1UL << cfg.page_shift) : 0);
    vmap::allocator a(cfg);
    const std::map<unsigned, unsigned long> n_q = preimage_sizes(m);
    RC_CLASSIFY(std::any_of(n_q.begin(), n_q.end(), [](auto& e) { return e.second > 1; }),
                "a queue takes several hash values");
    const unsigned long base = a.vmalloc_start() & ~(a.block_size() - 1);
    const unsigned long runs = (a.vmalloc_end() - base) / a.block_size() / nr;
    // The first and last complete runs, and a few anywhere.
    std::vector<unsigned long> ps = {0, runs - 1};
    for (unsigned long p :
         *rc::gen::container<std::vector<unsigned long>>(3, rc::gen::inRange(0UL, runs)))
        ps.push_back(p);
    for (unsigned long p : ps) {
        std::map<unsigned, std::set<std::uint64_t>> keys; // queue -> keys seen in run p
        for (unsigned long i = p * nr; i < (p + 1) * nr; ++i) {
            unsigned long addr = base + i * a.block_size();
            unsigned q = a.addr_to_vb_cpu(addr);
            std::uint64_t key = a.addr_to_vb_idx(addr);
            if (!keys[q].insert(key).second)
                RC_FAIL("dense key " + std::to_string(key) + " of block " + std::to_string(i) +
                        " is taken twice in queue " + std::to_string(q) + " (mask " +
                        a.cpus().mask().to_string() + ")");
        }
        for (auto& [q, n] : n_q) {
            std::set<std::uint64_t> want;
            for (unsigned long r = 0; r < n; ++r)
                want.insert(p * n + r);
            RC_ASSERT(keys[q] == want);
            keys.erase(q);
        }
        RC_ASSERT(keys.empty()); // no block went to a queue that is not possible
    }
    // The global scheme has one xarray: there the dense key is the index.
    cfg.scheme = vmap::vb_scheme::global;
    vmap::allocator g(cfg);
    for (unsigned long p : ps) {
        unsigned long i = p * nr + *rc::gen::inRange(0u, nr);
        RC_ASSERT(g.addr_to_vb_idx(base + i * g.block_size()) == i);
    }
}
