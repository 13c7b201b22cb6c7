// SPDX-License-Identifier: MIT
// properties/common.hpp: what the RapidCheck suites share.
//
// Nothing here models the allocator: the operation vocabulary is
// harness::op, the reference model is harness::model and the checking
// system is harness::runner (fuzz/harness/). This header only says how
// RapidCheck draws configurations and operations, and makes the runner's
// failures throw so that RapidCheck can shrink them:
//   - gen_config(): a configuration drawn as the three header bytes of the
//     fuzzers' encoding and decoded by harness::decode_config(), so the
//     properties and the fuzz targets cover the same space (sparse masks,
//     both schemes, all three keys, page and block sizes, small ranges that
//     exhaust, the full 32 TiB, one node or one per CPU, lazy_max_pages
//     from the kernel's formula down to 1). Shrinks towards mask {0},
//     flags 0, 2 blocks, the kernel's lifecycle.
//   - gen_op(): one harness::op, with the decoder's count classes (and, as
//     the decoder's opcode bit 4, whether the runner polls RCU after it).
//   - throwing_options(): runner_options whose failure handler is RC_FAIL.
//   - live_blocks(), small_pages(), hex(): small helpers for the direct checks.
#pragma once

#include <gtest/gtest.h>
// gtest first: rapidcheck/gtest.h uses it.
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "harness/runner.hpp"

// RapidCheck prints drawn values with showValue(), found by ADL.
namespace harness {
inline void showValue(const op& o, std::ostream& os) {
    os << to_string(o);
}
} // namespace harness

namespace props {

// A drawn configuration: the header bytes and what they decode to.
struct config_draw {
    std::uint8_t mask = 1, flags = 0, range = 0;
    vmap::config cfg;
    bool error_paths = false;
};

inline void showValue(const config_draw& c, std::ostream& os) {
    char bytes[64];
    std::snprintf(bytes, sizeof bytes, "header {0x%02x, 0x%02x, %u}: ", c.mask, c.flags, c.range);
    os << bytes << harness::describe(c.cfg, c.error_paths);
}

enum class error_paths { never, sometimes, always };

struct config_options {
    props::error_paths errors = error_paths::sometimes;
    bool exhaust = false; // 2..7 blocks of 128 pages: runs exhaust them
};

// Sparse masks are the interesting ones (CVE-2024-41032): half of the draws
// come from a list of shapes, the rest are any byte (mostly sparse too).
inline rc::Gen<std::uint8_t> gen_mask_byte() {
    return rc::gen::weightedOneOf<std::uint8_t>(
        {{1, rc::gen::element<std::uint8_t>(0x01, 0x03, 0x05, 0x0f, 0x25, 0x0a, 0x81, 0x80, 0x44,
                                            0xff)},
         {1, rc::gen::arbitrary<std::uint8_t>()}});
}

inline rc::Gen<config_draw> gen_config(config_options opt = {}) {
    return rc::gen::exec([opt] {
        config_draw c;
        c.mask = *gen_mask_byte();
        c.flags = *rc::gen::arbitrary<std::uint8_t>();
        if (opt.exhaust)
            c.flags &= ~0x30; // bbmap_bits 128
        if (opt.errors == error_paths::never)
            c.flags &= 0x7f;
        else if (opt.errors == error_paths::always)
            c.flags |= 0x80;
        // range < 240: (range % 24) + 2 blocks; >= 240: the full 32 TiB.
        c.range = opt.exhaust ? *rc::gen::inRange<std::uint8_t>(0, 6)
                              : *rc::gen::weightedOneOf<std::uint8_t>(
                                    {{3, rc::gen::inRange<std::uint8_t>(0, 8)},
                                     {3, rc::gen::inRange<std::uint8_t>(0, 240)},
                                     {2, rc::gen::inRange<std::uint8_t>(240, 255)}});
        // The dense key (ours) in a third of the draws with key bit 0: the
        // decoder reads it from the range byte's otherwise unused part.
        bool dense =
            *rc::gen::weightedOneOf<bool>({{2, rc::gen::just(false)}, {1, rc::gen::just(true)}});
        // The lifecycle knobs (vmap_nodes, lazy_max_pages) live there too;
        // 0 (one node, the kernel's lazy_max_pages()) is the shrink target.
        unsigned lifecycle = *rc::gen::inRange(0u, c.range < 240 ? 5u : 8u);
        if (c.range < 240)
            c.range = static_cast<std::uint8_t>(c.range % 24 + 24 * (2 * lifecycle + dense));
        else
            c.range = static_cast<std::uint8_t>(240 + 2 * lifecycle + dense);
        c.cfg = harness::decode_config(c.mask, c.flags, c.range, c.error_paths);
        return c;
    });
}

// Small ranges that runs exhaust, valid calls only: where blocks fill,
// fragment, get purged and ranges come back.
inline rc::Gen<config_draw> gen_exhausting_config() {
    config_options opt;
    opt.exhaust = true;
    opt.errors = error_paths::never;
    return gen_config(opt);
}

// Page counts in the decoder's classes: one page, a small multi-page
// request (2..64 = VMAP_MAX_ALLOC), a large one (65..146), and 0 pages
// (a documented misuse) only when error paths are on.
inline rc::Gen<unsigned> gen_count(bool error_paths) {
    return rc::gen::weightedOneOf<unsigned>({{40, rc::gen::just(1u)},
                                             {40, rc::gen::inRange(2u, 65u)},
                                             {8, rc::gen::inRange(65u, 147u)},
                                             {error_paths ? 2u : 0u, rc::gen::just(0u)}});
}

// Which ops, how often (weights relative to unmap's 24).
struct op_options {
    bool error_paths = false; // bad_unmap ops and 0-page maps
    bool threaded = false;    // no switch_cpu (threads stay bound), no check
    std::size_t map_weight = 36;
    std::size_t aliases_weight = 6;
    std::size_t bad_weight = 10; // with error_paths only
};

inline rc::Gen<harness::op> gen_op(op_options opt) {
    using harness::op_kind;
    // Excluded kinds get weight 0 (never drawn).
    std::size_t single = opt.threaded ? 0 : 1;
    std::size_t bad = opt.error_paths ? opt.bad_weight : 0;
    auto gen_kind = rc::gen::weightedElement<op_kind>({
        {opt.map_weight, op_kind::map},
        {24, op_kind::unmap},
        {8, op_kind::vread},
        {opt.aliases_weight, op_kind::unmap_aliases},
        {4, op_kind::purge},
        {2, op_kind::purge_all},
        {4, op_kind::drain},
        {2, op_kind::shrink},
        {6 * single, op_kind::switch_cpu},
        {2 * single, op_kind::check},
        {bad, op_kind::bad_unmap},
    });
    return rc::gen::exec([opt, gen_kind] {
        harness::op o;
        o.kind = *gen_kind;
        // Afterwards, run the ready RCU callbacks (the runner; the decoder's
        // opcode bit 4).
        o.rcu_poll = *rc::gen::arbitrary<bool>();
        switch (o.kind) {
        case op_kind::map:
            o.count = *gen_count(opt.error_paths);
            o.fill = *rc::gen::arbitrary<std::uint8_t>();
            // One map in 16 plans an allocation failure (harness/faults.hpp).
            if (*rc::gen::inRange(0, 16) == 0)
                o.fault = static_cast<vmap::fault_site>(*rc::gen::inRange(0, 3));
            break;
        case op_kind::unmap:
            o.handle = *rc::gen::arbitrary<std::uint8_t>();
            break;
        case op_kind::vread:
            o.handle = *rc::gen::arbitrary<std::uint8_t>();
            o.delta = *rc::gen::arbitrary<std::int8_t>();
            o.off = *rc::gen::arbitrary<std::uint8_t>();
            o.len = (*rc::gen::arbitrary<std::uint8_t>() + 1u) * 16;
            break;
        case op_kind::purge:
        case op_kind::switch_cpu:
            o.cpu = *rc::gen::arbitrary<std::uint8_t>();
            break;
        case op_kind::bad_unmap:
            o.bad = static_cast<harness::bad_kind>(
                *rc::gen::inRange(0u, static_cast<unsigned>(harness::bad_kind::count_)));
            o.handle = *rc::gen::arbitrary<std::uint8_t>();
            o.arg = *rc::gen::arbitrary<std::uint8_t>();
            break;
        case op_kind::unmap_aliases:
        case op_kind::check:
        case op_kind::purge_all:
        case op_kind::drain:
        case op_kind::shrink:
            break;
        }
        return o;
    });
}

inline rc::Gen<std::vector<harness::op>> gen_ops(op_options opt) {
    return rc::gen::container<std::vector<harness::op>>(gen_op(opt));
}

// The runner reports a mismatch by calling on_failure; RC_FAIL turns it
// into a failed test case that RapidCheck shrinks.
inline harness::runner_options throwing_options(unsigned check_every = 16) {
    harness::runner_options o;
    o.check_every = check_every;
    o.on_failure = [](const std::string& msg) { RC_FAIL(msg); };
    return o;
}

// After a drawn sequence: unmap every live mapping, one op at a time, so
// that every block goes through being fully dirty under the caller's
// checks (step: a callable taking a const harness::op&).
template <class Step>
void drain(harness::runner& r, Step&& step) {
    while (r.model().live_count())
        step(harness::op{.kind = harness::op_kind::unmap});
}

// Every block in the xarrays. Quiescent callers only (no concurrent
// frees), so the pointers stay valid after the RCU walk.
inline std::vector<vmap::vmap_block*> live_blocks(vmap::allocator& a) {
    std::vector<vmap::vmap_block*> v;
    a.for_each_block([&](vmap::vmap_block* vb) { v.push_back(vb); });
    return v;
}

// Pages a small mapping of `count` pages takes in its block (2^order).
inline unsigned small_pages(const vmap::allocator& a, unsigned count) {
    return 1u << vmap::get_order(static_cast<unsigned long>(count) << a.page_shift(),
                                 a.page_shift());
}

inline std::string hex(unsigned long v) {
    return vmap::vmap_area_allocator::hex(v);
}

} // namespace props
