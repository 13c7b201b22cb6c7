// SPDX-License-Identifier: MIT
// tests/test_pin.cpp: per-configuration fuzzing (fuzz/harness/pin.hpp). A
// pinned header decodes (harness::decode_config) as the pin says, whatever
// the header was, and every field the pin leaves open decodes as before.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/ops.hpp"
#include "harness/pin.hpp"

namespace {

harness::pin parse(const char* spec) {
    harness::pin p;
    std::string error;
    EXPECT_TRUE(harness::parse_pin(spec, p, error)) << spec << ": " << error;
    return p;
}

struct decoded {
    vmap::config cfg;
    bool error_paths = false;
};

decoded decode(const std::uint8_t h[3]) {
    decoded d;
    d.cfg = harness::decode_config(h[0], h[1], h[2], d.error_paths);
    return d;
}

bool sparse(const vmap::config& c) {
    const auto& cpus = c.possible.cpus();
    return cpus.back() + 1 != cpus.size();
}

bool full_range(const vmap::config& c) {
    return c.vmalloc_size == vmap::default_vmalloc_size;
}

// Headers to pin: every flags and range byte under a few masks, and every
// mask under a few flags and range bytes.
std::vector<std::array<std::uint8_t, 3>> headers() {
    std::vector<std::array<std::uint8_t, 3>> out;
    for (unsigned mask : {0u, 0x0bu})
        for (unsigned flags = 0; flags < 256; flags += 1)
            for (unsigned range = 0; range < 256; range += 5)
                out.push_back({std::uint8_t(mask), std::uint8_t(flags), std::uint8_t(range)});
    for (unsigned mask = 0; mask < 256; ++mask)
        for (unsigned flags : {0u, 0x33u, 0xffu})
            for (unsigned range : {0u, 23u, 24u, 239u, 240u, 255u})
                out.push_back({std::uint8_t(mask), std::uint8_t(flags), std::uint8_t(range)});
    return out;
}

TEST(Pin, ParsesEveryFieldAndRejectsTheRest) {
    harness::pin p = parse("scheme=global,key=dense mask=sparse,bbmap=256,page=1024,calls=valid,"
                           "range=full");
    EXPECT_EQ(p.global, true);
    EXPECT_EQ(p.key, vmap::vb_key::dense);
    EXPECT_EQ(p.sparse, true);
    EXPECT_EQ(p.bbmap_shift, 1u);
    EXPECT_EQ(p.page_index, 2u);
    EXPECT_EQ(p.error_paths, false);
    EXPECT_EQ(p.full_range, true);
    EXPECT_TRUE(parse("").empty());
    for (const char* bad : {"scheme=", "key=dens", "bbmap=64", "colour=red", "calls"}) {
        harness::pin q;
        std::string error;
        EXPECT_FALSE(harness::parse_pin(bad, q, error)) << bad;
        EXPECT_NE(error.find(bad), std::string::npos) << error;
    }
}

TEST(Pin, PinnedHeadersDecodeAsPinnedAndKeepTheRest) {
    const char* specs[] = {
        "scheme=global",   "scheme=per_cpu_hashed",
        "key=block_index", "key=dense",
        "key=va_start",    "mask=sparse",
        "mask=contiguous", "bbmap=128",
        "bbmap=1024",      "page=64",
        "page=4096",       "calls=valid",
        "calls=errors",    "range=small",
        "range=full",      "range=small,key=dense,mask=sparse,scheme=global,bbmap=512,calls=valid"};
    const auto all = headers();
    std::vector<decoded> unpinned;
    for (const auto& h0 : all)
        unpinned.push_back(decode(h0.data()));
    for (const char* spec : specs) {
        harness::pin p = parse(spec);
        for (std::size_t i = 0; i < all.size(); ++i) {
            const auto& h0 = all[i];
            std::uint8_t h[3] = {h0[0], h0[1], h0[2]};
            harness::apply_pin(p, h);
            const decoded &before = unpinned[i], after = decode(h);
            const vmap::config &a = after.cfg, &b = before.cfg;
            auto where = [&] {
                return std::string(spec) + " on header " + std::to_string(h0[0]) + "," +
                       std::to_string(h0[1]) + "," + std::to_string(h0[2]);
            };
            auto pinned_or_same = [&](auto field, auto pinned, auto a_value, auto b_value) {
                if (field) {
                    ASSERT_EQ(a_value, pinned) << where();
                } else {
                    ASSERT_EQ(a_value, b_value) << where();
                }
            };
            pinned_or_same(p.global, p.global.value_or(false), a.scheme == vmap::vb_scheme::global,
                           b.scheme == vmap::vb_scheme::global);
            pinned_or_same(p.key, p.key.value_or(vmap::vb_key::block_index), a.key, b.key);
            pinned_or_same(p.sparse, p.sparse.value_or(false), sparse(a), sparse(b));
            if (!p.sparse) {
                ASSERT_EQ(a.possible.cpus(), b.possible.cpus()) << where();
            }
            pinned_or_same(p.bbmap_shift, 128u << p.bbmap_shift.value_or(0), a.bbmap_bits,
                           b.bbmap_bits);
            pinned_or_same(p.page_index, 6u + 2 * p.page_index.value_or(0), a.page_shift,
                           b.page_shift);
            pinned_or_same(p.error_paths, p.error_paths.value_or(false), after.error_paths,
                           before.error_paths);
            pinned_or_same(p.full_range, p.full_range.value_or(false), full_range(a),
                           full_range(b));
            ASSERT_EQ(a.vmalloc_start == vmap::default_vmalloc_start,
                      b.vmalloc_start == vmap::default_vmalloc_start)
                << where();
            ASSERT_EQ(a.vmap_nodes, b.vmap_nodes) << where();
            if (!p.full_range && !full_range(b)) { // the range in blocks
                auto blocks = [](const vmap::config& c) {
                    return c.vmalloc_size /
                           (static_cast<unsigned long>(c.bbmap_bits) << c.page_shift);
                };
                ASSERT_EQ(blocks(a), blocks(b)) << where();
            }
        }
    }
}

TEST(Pin, ShortInputsArePaddedWithTheTargetsDefaults) {
    const harness::header_bytes defaults = {3, 0, 255};
    harness::pin p = parse("scheme=global");
    std::uint8_t buf[8] = {0x07};
    EXPECT_EQ(harness::pin_input(p, buf, 1, sizeof buf, defaults), 3u);
    EXPECT_EQ(buf[0], 0x07);
    EXPECT_EQ(buf[1], 0x01);
    EXPECT_EQ(buf[2], 255);
    EXPECT_EQ(harness::pin_input(p, buf, 0, 2, defaults), 0u) << "no room: left alone";
    EXPECT_EQ(harness::pin_input(harness::pin{}, buf, 1, sizeof buf, defaults), 1u)
        << "no pin: left alone";
}

} // namespace
