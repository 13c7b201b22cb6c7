// SPDX-License-Identifier: MIT
// bench/bench_memory.cpp: what the block xarrays cost in memory (issue 8),
// and checks of the dense key. Prints one JSON document on stdout.
//
// "memory": for each possible-CPU mask (first_n(N), N = 1, 2, 4, ..., 256,
// and the sparse "even CPUs" mask {0, 2, ..., 2N-2}, where every odd hash
// value falls back to the next even CPU, so most queues receive two hash
// values), each number of live blocks per possible CPU in --per_cpu (default
// 1,4,16,64), and each scheme/key: the xarray nodes, bytes and height after B
// = N * per_cpu blocks were created by a real allocator, round-robin over
// the CPUs, all still live (full blocks, as the lowest-address placement
// leaves them: indices 0..B-1). bytes use our node size (xarray::node_bytes);
// kernel_bytes use the kernel's 576-byte xa_node. Every allocator is audited
// with allocator::check() before it is measured.
//
// "dense_check": vb_key::dense never gives two blocks of one queue the same
// key, and keeps each queue's keys below (i / nr_cpu_ids + 1) * n_q: checked
// exhaustively for every non-empty mask of CPUs 0..9 with every offset of
// VMALLOC_START modulo nr_cpu_ids, and for random sparse masks of up to 256
// CPUs, over 64 * nr_cpu_ids + 7 consecutive blocks each.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <vmap/vmap.hpp>

namespace {

struct scheme_key {
    vmap::vb_scheme scheme;
    vmap::vb_key key;
};

const scheme_key layouts[] = {
    {vmap::vb_scheme::global, vmap::vb_key::block_index},
    {vmap::vb_scheme::global, vmap::vb_key::va_start},
    {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::block_index},
    {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::va_start},
    {vmap::vb_scheme::per_cpu_hashed, vmap::vb_key::dense},
};

constexpr std::size_t kernel_node_bytes = 576; // struct xa_node, 64-bit

std::string json_str(const std::string& s) {
    return "\"" + s + "\"";
}

// --- memory -------------------------------------------------------------

struct memory_row {
    std::string mask_kind;
    unsigned possible = 0, nr_cpu_ids = 0, per_cpu = 0;
    std::size_t blocks = 0;
    std::string scheme, key;
    std::size_t nodes = 0, bytes = 0, kernel_bytes = 0;
    unsigned max_height = 0;
    std::size_t nonempty_xarrays = 0;
};

bool measure(const vmap::cpu_mask& mask, const std::string& kind, unsigned per_cpu,
             const scheme_key& sk, memory_row& row) {
    vmap::config cfg;
    cfg.possible = mask;
    cfg.scheme = sk.scheme;
    cfg.key = sk.key;
    cfg.record_tlb = false;
    vmap::allocator a(cfg);
    std::vector<std::byte> page(a.page_size());
    std::vector<std::byte*> pages(a.max_alloc(), page.data());
    const std::vector<unsigned>& cpus = a.cpus().possible_cpus();
    std::size_t blocks = static_cast<std::size_t>(cpus.size()) * per_cpu;
    unsigned maps_per_block = a.bbmap_bits() / a.max_alloc();
    for (std::size_t b = 0; b < blocks; ++b) {
        vmap::cpu_binding on(cpus[b % cpus.size()]);
        for (unsigned m = 0; m < maps_per_block; ++m)
            if (!a.vm_map_ram(pages)) {
                std::fprintf(stderr, "bench_memory: vm_map_ram failed\n");
                return false;
            }
    }
    std::vector<std::string> problems = a.check();
    if (!problems.empty()) {
        std::fprintf(stderr, "bench_memory: audit failed (%s, %s/%s): %s\n",
                     mask.to_string().c_str(), to_string(sk.scheme), to_string(sk.key),
                     problems.front().c_str());
        return false;
    }
    vmap::allocator_stats st = a.stats();
    if (st.blocks_live != blocks) {
        std::fprintf(stderr, "bench_memory: %llu live blocks, expected %zu\n",
                     static_cast<unsigned long long>(st.blocks_live), blocks);
        return false;
    }
    row.mask_kind = kind;
    row.possible = a.cpus().num_possible();
    row.nr_cpu_ids = a.cpus().nr_cpu_ids();
    row.per_cpu = per_cpu;
    row.blocks = blocks;
    row.scheme = to_string(sk.scheme);
    row.key = to_string(sk.key);
    row.nodes = st.xa_nodes;
    row.bytes = st.xa_bytes;
    row.kernel_bytes = st.xa_nodes * kernel_node_bytes;
    row.max_height = st.xa_max_height;
    row.nonempty_xarrays = 0;
    if (sk.scheme == vmap::vb_scheme::global)
        row.nonempty_xarrays = 1;
    else
        for (const vmap::queue_stats& q : st.queues)
            row.nonempty_xarrays += q.blocks ? 1 : 0;
    return true;
}

// --- dense key checks ----------------------------------------------------

struct dense_result {
    std::size_t masks = 0, allocators = 0, blocks = 0, collisions = 0, bound_violations = 0;
    std::string first_failure;
};

// One allocator (its hash and key functions only; no block is created):
// every block index in [0, 64 * nr_cpu_ids + 7) must get a key of its own
// within its queue, below (i / nr_cpu_ids + 1) * n_q.
void check_dense(const vmap::cpu_mask& mask, unsigned start_offset_blocks, dense_result& res) {
    vmap::config cfg;
    cfg.possible = mask;
    cfg.key = vmap::vb_key::dense;
    cfg.record_tlb = false;
    // A small geometry keeps the range small; the key depends on block
    // numbers only. Shift VMALLOC_START so that its block number modulo
    // nr_cpu_ids takes every value.
    cfg.page_shift = 12;
    cfg.max_alloc = 1;
    cfg.bbmap_bits = 2;
    unsigned long block = 2UL << 12;
    cfg.vmalloc_start = (1UL << 32) + start_offset_blocks * block;
    unsigned nr = mask.limit();
    unsigned long nblocks = 64UL * nr + 7;
    cfg.vmalloc_size = nblocks * block;
    vmap::allocator a(cfg);
    ++res.allocators;
    // n_q: how many hash values land on each queue.
    std::map<unsigned, unsigned> landed;
    for (unsigned h = 0; h < nr; ++h)
        ++landed[a.addr_to_vb_cpu(static_cast<unsigned long>(h) * block)];
    std::map<unsigned, std::set<std::uint64_t>> keys;
    for (unsigned long i = 0; i < nblocks; ++i) {
        unsigned long addr = cfg.vmalloc_start + i * block;
        unsigned q = a.addr_to_vb_cpu(addr);
        std::uint64_t k = a.addr_to_vb_idx(addr);
        ++res.blocks;
        auto fail = [&](const char* what) {
            if (res.first_failure.empty())
                res.first_failure = std::string(what) + " for mask " + mask.to_string() +
                                    ", block " + std::to_string(i) + ", queue " +
                                    std::to_string(q) + ", key " + std::to_string(k);
        };
        if (!keys[q].insert(k).second) {
            ++res.collisions;
            fail("collision");
        }
        if (k >= (i / nr + 1) * landed[q]) {
            ++res.bound_violations;
            fail("key above the density bound");
        }
    }
}

dense_result run_dense_checks() {
    dense_result res;
    // Every non-empty mask of CPUs 0..9, every start offset modulo nr_cpu_ids.
    for (std::uint64_t bits = 1; bits < (1u << 10); ++bits) {
        vmap::cpu_mask m = vmap::cpu_mask::from_bits(bits);
        ++res.masks;
        for (unsigned off = 0; off < m.limit(); ++off)
            check_dense(m, off, res);
    }
    // Random sparse masks of up to 256 CPUs, random densities and offsets.
    std::mt19937_64 rng(8);
    for (unsigned t = 0; t < 300; ++t) {
        unsigned limit = 1 + static_cast<unsigned>(rng() % 256);
        unsigned density = 1 + static_cast<unsigned>(rng() % 100); // percent
        vmap::cpu_mask m;
        for (unsigned c = 0; c + 1 < limit; ++c)
            if (rng() % 100 < density)
                m.set(c);
        m.set(limit - 1); // nr_cpu_ids == limit
        ++res.masks;
        check_dense(m, static_cast<unsigned>(rng() % limit), res);
    }
    return res;
}

std::vector<unsigned> parse_list(const char* s) {
    std::vector<unsigned> out;
    while (*s) {
        char* end = nullptr;
        unsigned long v = std::strtoul(s, &end, 10);
        if (end == s || v == 0 || v > 4096) {
            std::fprintf(stderr, "bench_memory: bad list\n");
            std::exit(2);
        }
        out.push_back(static_cast<unsigned>(v));
        s = *end == ',' ? end + 1 : end;
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<unsigned> per_cpu = {1, 4, 16, 64};
    unsigned max_cpus = 256;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--per_cpu=", 10) == 0) {
            per_cpu = parse_list(argv[i] + 10);
        } else if (std::strncmp(argv[i], "--max_cpus=", 11) == 0) {
            max_cpus = parse_list(argv[i] + 11).at(0);
        } else {
            std::fprintf(stderr, "usage: bench_memory [--per_cpu=1,4,16,64] [--max_cpus=256]\n");
            return 2;
        }
    }

    dense_result dense = run_dense_checks();

    std::vector<memory_row> rows;
    for (const char* kind : {"first_n", "even"}) {
        for (unsigned n = 1; n <= max_cpus; n *= 2) {
            vmap::cpu_mask mask;
            if (std::strcmp(kind, "first_n") == 0)
                mask = vmap::cpu_mask::first_n(n);
            else if (n == 1)
                continue; // {0} is first_n(1)
            else
                for (unsigned c = 0; c < n; ++c)
                    mask.set(2 * c);
            for (unsigned pc : per_cpu)
                for (const scheme_key& sk : layouts) {
                    memory_row row;
                    if (!measure(mask, kind, pc, sk, row))
                        return 1;
                    rows.push_back(row);
                }
        }
    }

    std::printf("{\n  \"node_bytes\": %zu,\n  \"kernel_node_bytes\": %zu,\n",
                vmap::xarray<vmap::vmap_block>::node_bytes, kernel_node_bytes);
    std::printf("  \"dense_check\": {\"masks\": %zu, \"allocators\": %zu, \"blocks\": %zu, "
                "\"collisions\": %zu, \"bound_violations\": %zu, \"first_failure\": %s},\n",
                dense.masks, dense.allocators, dense.blocks, dense.collisions,
                dense.bound_violations, json_str(dense.first_failure).c_str());
    std::printf("  \"memory\": [\n");
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const memory_row& r = rows[i];
        std::printf(
            "    {\"mask\": %s, \"possible\": %u, \"nr_cpu_ids\": %u, \"per_cpu\": %u, "
            "\"blocks\": %zu, \"scheme\": %s, \"key\": %s, \"nodes\": %zu, \"bytes\": "
            "%zu, \"kernel_bytes\": %zu, \"max_height\": %u, \"nonempty_xarrays\": %zu}%s\n",
            json_str(r.mask_kind).c_str(), r.possible, r.nr_cpu_ids, r.per_cpu, r.blocks,
            json_str(r.scheme).c_str(), json_str(r.key).c_str(), r.nodes, r.bytes, r.kernel_bytes,
            r.max_height, r.nonempty_xarrays, i + 1 < rows.size() ? "," : "");
    }
    std::printf("  ]\n}\n");
    return dense.collisions == 0 && dense.bound_violations == 0 ? 0 : 1;
}
