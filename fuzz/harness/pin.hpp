// SPDX-License-Identifier: MIT
// harness/pin.hpp: per-configuration fuzzing. A pin fixes some fields of a
// scenario's header (the three bytes harness/ops.hpp decodes: mask, flags,
// range) and leaves the rest to the fuzzer.
//
// It is applied to the input's bytes, not to the decoded config: the pinned
// fuzzers (fuzz/pin_mutator.cpp) rewrite the header of every input they
// mutate, so whatever such a run writes, crashes included, carries its
// configuration in its own bytes and replays on the ordinary binaries with no
// pin in sight. An input shorter than the header is first padded with the
// target's defaults for the missing bytes, which is what it decoded as anyway.
//
// Spec (VMAP_FUZZ_PIN, ci/fuzz --pin): fields separated by commas or spaces,
//   scheme=per_cpu_hashed|global   key=block_index|dense|va_start
//   mask=sparse|contiguous         bbmap=128|256|512|1024
//   page=64|256|1024|4096          calls=valid|errors
//   range=small|full
// mask=sparse leaves CPU 1 out and puts CPUs 0 and 2 in; contiguous keeps
// the low run of set bits (at least CPU 0). vmap_threads ignores page and
// calls (it always runs 64-byte pages and valid calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <vmap/allocator.hpp>

#include "ops.hpp"

namespace harness {

struct pin {
    std::optional<bool> global;          // flags bit 0
    std::optional<vmap::vb_key> key;     // flags bit 1 and the range byte
    std::optional<bool> sparse;          // mask
    std::optional<unsigned> bbmap_shift; // flags bits 4-5: 128 << n
    std::optional<unsigned> page_index;  // flags bits 2-3: 6, 8, 10, 12
    std::optional<bool> error_paths;     // flags bit 7
    std::optional<bool> full_range;      // range >= 240
    bool empty() const {
        return !global && !key && !sparse && !bbmap_shift && !page_index && !error_paths &&
               !full_range;
    }
};

// Parses SPEC into OUT; on a bad field returns false with ERROR saying which.
inline bool parse_pin(std::string_view spec, pin& out, std::string& error) {
    out = pin{};
    auto index_of = [](std::string_view v,
                       std::initializer_list<std::string_view> names) -> std::optional<unsigned> {
        unsigned i = 0;
        for (std::string_view n : names) {
            if (v == n)
                return i;
            ++i;
        }
        return std::nullopt;
    };
    while (!spec.empty()) {
        std::size_t end = spec.find_first_of(", ");
        std::string_view field = spec.substr(0, end);
        spec = end == std::string_view::npos ? std::string_view{} : spec.substr(end + 1);
        if (field.empty())
            continue;
        std::size_t eq = field.find('=');
        std::string_view name = field.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? "" : field.substr(eq + 1);
        std::optional<unsigned> i;
        if (name == "scheme" && (i = index_of(value, {"per_cpu_hashed", "global"})))
            out.global = *i == 1;
        else if (name == "key" && (i = index_of(value, {"block_index", "dense", "va_start"})))
            out.key = *i == 0   ? vmap::vb_key::block_index
                      : *i == 1 ? vmap::vb_key::dense
                                : vmap::vb_key::va_start;
        else if (name == "mask" && (i = index_of(value, {"contiguous", "sparse"})))
            out.sparse = *i == 1;
        else if (name == "bbmap" && (i = index_of(value, {"128", "256", "512", "1024"})))
            out.bbmap_shift = *i;
        else if (name == "page" && (i = index_of(value, {"64", "256", "1024", "4096"})))
            out.page_index = *i;
        else if (name == "calls" && (i = index_of(value, {"valid", "errors"})))
            out.error_paths = *i == 1;
        else if (name == "range" && (i = index_of(value, {"small", "full"})))
            out.full_range = *i == 1;
        else {
            error = "bad pin field '" + std::string(field) + "' (see fuzz/harness/pin.hpp)";
            return false;
        }
    }
    return true;
}

// Rewrites HEADER (mask, flags, range) so that it decodes as P says; the
// fields P leaves open keep their bits.
inline void apply_pin(const pin& p, std::uint8_t header[3]) {
    std::uint8_t& mask = header[0];
    std::uint8_t& flags = header[1];
    std::uint8_t& range = header[2];
    auto set_bits = [&flags](unsigned shift, unsigned width, unsigned v) {
        unsigned m = ((1u << width) - 1) << shift;
        flags = static_cast<std::uint8_t>((flags & ~m) | ((v << shift) & m));
    };
    if (p.sparse) {
        bool contiguous = mask == 0 || (mask & (mask + 1)) == 0;
        if (*p.sparse && contiguous)
            mask = static_cast<std::uint8_t>((mask & ~0x02u) | 0x05u);
        else if (!*p.sparse && !contiguous)
            mask = static_cast<std::uint8_t>((mask & ~(mask + 1u) & 0xffu) | 1u);
    }
    if (p.global)
        set_bits(0, 1, *p.global);
    if (p.page_index)
        set_bits(2, 2, *p.page_index);
    if (p.bbmap_shift)
        set_bits(4, 2, *p.bbmap_shift);
    if (p.error_paths)
        set_bits(7, 1, *p.error_paths);
    if (p.full_range) {
        // Keep the dense bit and the lifecycle: below 240 they are range / 24
        // (lifecycle << 1 | dense, lifecycle 0..4), above it range - 240
        // (lifecycle 0..7; 5..7 become 1..3, which keeps vmap_nodes' bit).
        if (*p.full_range && range < 240) {
            range = static_cast<std::uint8_t>(240 + range / 24u);
        } else if (!*p.full_range && range >= 240) {
            unsigned v = range - 240u, life = v >> 1;
            if (life > 4)
                life -= 4;
            range = static_cast<std::uint8_t>(((life << 1) | (v & 1u)) * 24u + v);
        }
    }
    if (p.key) {
        set_bits(1, 1, *p.key == vmap::vb_key::va_start);
        // The range byte's "dense" bit: bit 0 of range / 24 below 240, of
        // range itself above; it matters only while flags bit 1 is clear.
        bool dense = *p.key == vmap::vb_key::dense;
        if (range < 240) {
            unsigned r = range / 24u, rest = range % 24u;
            r = dense ? (r | 1u) : (r & ~1u);
            range = static_cast<std::uint8_t>(r * 24u + rest);
        } else {
            range = static_cast<std::uint8_t>(dense ? (range | 1u) : (range & ~1u));
        }
    }
}

// Applies P to an input of SIZE bytes in a buffer of MAX_SIZE; returns the
// new size. A short input is padded to the three header bytes with DEFAULTS,
// the values the target's decoder gives bytes that are missing.
inline std::size_t pin_input(const pin& p, std::uint8_t* data, std::size_t size,
                             std::size_t max_size, const header_bytes& defaults) {
    if (p.empty() || max_size < 3)
        return size;
    for (std::size_t i = size; i < 3; ++i)
        data[i] = defaults[i];
    size = size < 3 ? 3 : size;
    apply_pin(p, data);
    return size;
}

} // namespace harness
