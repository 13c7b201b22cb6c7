// SPDX-License-Identifier: MIT
// properties/xarray.cpp - property 5: the xarray.
//
// The oracle is harness::xa_checker (fuzz/harness/xa_ops.hpp), the same one
// the xarray_ops fuzz target uses: after every insert, erase, load and
// toggle it compares the entry with an std::map, the height with the
// minimum for the largest key, and the node count with the radix-tree
// formula (xa_expected_nodes); every 16th op and at the end it walks the
// tree with for_each and audits its shape.
//   - random op sequences agree with std::map;
//   - erase restores height and nodes: inserting a new key into any tree
//     and erasing it again leaves the same height and node count, and
//     erasing everything leaves no node at all;
//   - block_index keys (the merged v4): the keys addr_to_vb_idx() gives to
//     the blocks of 32 TiB of 4 MiB blocks are below 2^23, so the tree is at
//     most 4 levels high, and exactly 4 once the range's last block is in;
//   - va_start keys (v3 of the seed): any block of the range at
//     0xffffc90000000000 is keyed by its address, which needs all 64 bits:
//     11 levels for even a single block (the review finding, measured on
//     the tree, not computed).
#include "common.hpp"

#include <set>

#include "harness/xa_ops.hpp"

namespace harness {
inline void showValue(const xa_op& o, std::ostream& os) {
    static constexpr const char* names[] = {"insert", "erase", "load", "toggle"};
    os << names[static_cast<unsigned>(o.kind)] << " " << o.key;
}
} // namespace harness

namespace {

// Keys of the widths xa_ops decodes: < 64 (one level), < 4096, < 2^24
// (block indices of 32 TiB), and any 64-bit key (va_start keys included).
rc::Gen<std::uint64_t> gen_key() {
    return rc::gen::weightedOneOf<std::uint64_t>(
        {{3, rc::gen::inRange<std::uint64_t>(0, 64)},
         {3, rc::gen::inRange<std::uint64_t>(0, 4096)},
         {2, rc::gen::inRange<std::uint64_t>(0, 1 << 24)},
         {1, rc::gen::arbitrary<std::uint64_t>()},
         {1, rc::gen::map(rc::gen::inRange<std::uint64_t>(0, 1 << 23), [](std::uint64_t b) {
              return vmap::default_vmalloc_start + (b << 22); // a 4 MiB block's va_start
          })}});
}

// Ops drawn over a small pool of keys, so that erases and loads hit.
rc::Gen<std::vector<harness::xa_op>> gen_xa_ops() {
    return rc::gen::mapcat(
        rc::gen::nonEmpty(rc::gen::container<std::vector<std::uint64_t>>(gen_key())),
        [](const std::vector<std::uint64_t>& pool) {
            return rc::gen::container<std::vector<harness::xa_op>>(rc::gen::build<harness::xa_op>(
                rc::gen::set(&harness::xa_op::kind,
                             rc::gen::element(harness::xa_op_kind::insert,
                                              harness::xa_op_kind::erase, harness::xa_op_kind::load,
                                              harness::xa_op_kind::toggle)),
                rc::gen::set(&harness::xa_op::key, rc::gen::elementOf(pool))));
        });
}

void step(harness::xa_checker& x, harness::xa_op o, std::size_t i) {
    std::string err = x.step(o, i);
    if (!err.empty())
        RC_FAIL(err);
}

// Inserts the key of each distinct block among `addrs`, calling `after` once
// the tree holds it; returns the number of distinct blocks.
template <class F>
std::size_t insert_block_keys(vmap::allocator& a, harness::xa_checker& x,
                              const std::vector<unsigned long>& addrs, F&& after) {
    std::set<std::uint64_t> seen;
    std::size_t i = 0;
    for (unsigned long addr : addrs) {
        std::uint64_t key = a.addr_to_vb_idx(addr);
        if (!seen.insert(key).second)
            continue;
        step(x, {harness::xa_op_kind::insert, key}, i++);
        after();
    }
    return seen.size();
}

} // namespace

RC_GTEST_PROP(xarray, operations_agree_with_std_map, ()) {
    const auto ops = *gen_xa_ops();
    harness::xa_checker x;
    for (std::size_t i = 0; i < ops.size(); ++i)
        step(x, ops[i], i);
    std::string err = x.walk(ops.size());
    if (err.empty())
        err = x.finish();
    if (!err.empty())
        RC_FAIL(err);
}

RC_GTEST_PROP(xarray, erase_restores_height_and_frees_nodes, ()) {
    const auto keys = *rc::gen::container<std::set<std::uint64_t>>(gen_key());
    const std::uint64_t extra =
        *rc::gen::suchThat(gen_key(), [keys](std::uint64_t k) { return keys.count(k) == 0; });
    harness::xa_checker x;
    std::size_t i = 0;
    for (std::uint64_t k : keys)
        step(x, {harness::xa_op_kind::insert, k}, i++);
    unsigned height = x.xa().height();
    std::size_t nodes = x.xa().nodes();
    step(x, {harness::xa_op_kind::insert, extra}, i++);
    step(x, {harness::xa_op_kind::erase, extra}, i++);
    RC_ASSERT(x.xa().height() == height);
    RC_ASSERT(x.xa().nodes() == nodes);
    std::string err = x.finish(); // erase all: no node, height 0
    if (!err.empty())
        RC_FAIL(err);
    RC_ASSERT(x.xa().nodes() == 0u);
    RC_ASSERT(x.xa().height() == 0u);
}

// The kernel's geometry: 4 KiB pages, 4 MiB blocks (1024 pages), 32 TiB at
// 0xffffc90000000000.
static vmap::config kernel_geometry(vmap::vb_key key) {
    vmap::config cfg;
    cfg.possible = vmap::cpu_mask{0};
    cfg.key = key;
    cfg.page_shift = 12;
    cfg.bbmap_bits = 1024;
    cfg.vmalloc_start = vmap::default_vmalloc_start;
    cfg.vmalloc_size = vmap::default_vmalloc_size;
    return cfg;
}

RC_GTEST_PROP(xarray, block_index_keys_over_32_tib_need_at_most_4_levels, ()) {
    vmap::allocator a(kernel_geometry(vmap::vb_key::block_index));
    RC_ASSERT(a.block_size() == 4UL << 20);
    // Generators outlive this call (RapidCheck shrinks later): capture by value.
    const unsigned long start = a.vmalloc_start(), range = a.vmalloc_end() - start;
    auto addrs = *rc::gen::container<std::vector<unsigned long>>(rc::gen::map(
        rc::gen::inRange(0UL, range), [start](unsigned long off) { return start + off; }));
    bool with_last = *rc::gen::arbitrary<bool>();
    if (with_last)
        addrs.push_back(a.vmalloc_end() - 1);
    harness::xa_checker x;
    insert_block_keys(a, x, addrs, [&] { RC_ASSERT(x.xa().height() <= 4u); });
    if (with_last)
        RC_ASSERT(x.xa().height() == 4u);
}

RC_GTEST_PROP(xarray, va_start_keys_at_0xffffc90000000000_need_11_levels, ()) {
    vmap::allocator a(kernel_geometry(vmap::vb_key::va_start));
    // Generators outlive this call (RapidCheck shrinks later): capture by value.
    const unsigned long start = a.vmalloc_start(), range = a.vmalloc_end() - start;
    auto addrs = *rc::gen::nonEmpty(rc::gen::container<std::vector<unsigned long>>(rc::gen::map(
        rc::gen::inRange(0UL, range), [start](unsigned long off) { return start + off; })));
    harness::xa_checker x;
    std::size_t blocks = insert_block_keys(a, x, addrs, [&] { RC_ASSERT(x.xa().height() == 11u); });
    // One block alone already costs 11 nodes (one per level).
    if (blocks == 1)
        RC_ASSERT(x.xa().nodes() == 11u);
}
