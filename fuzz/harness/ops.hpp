// SPDX-License-Identifier: MIT
// harness/ops.hpp: the operation vocabulary shared by the fuzz targets, the
// property suites and vmap-trace, and the one decoder from bytes to it.
//
// Any byte string decodes; there is no invalid input. Reading past the end
// ends the scenario cleanly (a half-read operation is dropped).
//
// Encoding (the only place it is written down):
//
//   scenario := header op*
//   header   := mask flags range            (3 bytes)
//     mask   : bit i = CPU i is possible; 0 means {0}. Sparse masks arise
//              naturally ({0,2,5} is 0b100101).
//     flags  : bit 0     scheme   0 per_cpu_hashed, 1 global
//              bit 1     key      1 va_start; 0: block_index, or dense
//                                 (ours) when the range byte says so
//              bits 2-3  page_shift  6, 8, 10, 12
//              bits 4-5  bbmap_bits  128, 256, 512, 1024
//              bit 6     start the range one page above block alignment
//              bit 7     error paths: bad unmaps are decoded (else they
//                        decode as plain unmaps) and BUG_ONs report
//     range  : 0..239   (range % 24) + 2 blocks: small enough to exhaust;
//                       key bit 0: dense if (range / 24) is odd;
//                       lifecycle l = (range / 24) >> 1 (0..4)
//              240..255 the full 32 TiB; key bit 0: dense if range is odd;
//                       lifecycle l = (range - 240) >> 1 (0..7)
//              lifecycle: bit 0  vmap_nodes: 1, or the kernel's count (one
//                                per possible CPU, so pools are used);
//                         l >> 1 lazy_max_pages: the kernel's formula, one
//                                block's pages, four blocks', or 1 (the
//                                drain work is due after every free)
//   op := opcode args
//     opcode bit 4: after the op, run the RCU callbacks that are ready
//              (rcu::poll(): the input ends grace periods, harness/runner.hpp)
//     opcode bits 5-7: `sub`, read by vmap_threads for its vread and check
//              ops (fuzz/vmap_threads.cpp); a map with sub 7 plans a fault
//              (harness/faults.hpp) at site fill % 3: vmap_pages_range,
//              new_vmap_block's kmalloc, its xa_insert
//     error paths also turn config::strict on; without them the allocator
//     runs as the kernel, and the decoder makes only valid calls
//     opcode % 16:
//       0-5   map        count fill      count byte k: k < 96 -> 1 page;
//                                        k < 224 -> 2 + (k - 96) % 63 (2..64);
//                                        k < 252 -> 65 + (k - 224) * 3 (65..146);
//                                        else 0 pages (error paths) or 1
//       6-8   unmap      handle          live mapping handle % live count
//       9     vread      handle delta off len
//                                        from the mapping's page
//                                        (int8)delta % (count + 2), byte off
//                                        (off % page), length (len + 1) * 16
//       10    unmap_aliases
//       11    purge      cpu             purge_fragmented_blocks(possible[cpu % n])
//       12    switch_cpu cpu             run on possible[cpu % n]
//       13    bad_unmap  kind handle arg (error paths only; else: unmap handle)
//       14    opcode < 128: check        allocator::check()
//             else: drain                run the drain work if it is scheduled
//       15    opcode < 128: purge_all    purge_fragmented_blocks_allcpus()
//             else: shrink               the vmap-node shrinker's scan
//
// A handle names a live mapping by position, so every op stays meaningful
// whatever happened before; ops on an empty set of mappings do nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <vmap/allocator.hpp>

#include "faults.hpp"

namespace harness {

enum class op_kind : std::uint8_t {
    map,
    unmap,
    vread,
    unmap_aliases,
    purge,
    switch_cpu,
    bad_unmap,
    check,
    purge_all,
    drain,  // run_drain_work(): drain_vmap_area_work, if scheduled
    shrink, // vmap_node_shrink_scan()
};

// The misuses bad_unmap can make of vm_unmap_ram().
enum class bad_kind : std::uint8_t {
    null_addr,    // address 0
    below_range,  // one page below the range
    above_range,  // the range's end
    unaligned,    // a live mapping's address + 1
    zero_count,   // a live mapping with count 0
    wrong_count,  // a live mapping with a count of another order/size
    interior,     // a live mapping's second page
    unknown,      // an address in the range where nothing starts
    double_unmap, // the address of a mapping already unmapped
    count_ = 9,
};

struct op {
    op_kind kind = op_kind::check;
    unsigned count = 0;    // map: pages
    std::uint8_t fill = 0; // map: pattern seed
    unsigned handle = 0;   // unmap, vread, bad_unmap: live mapping % live count
    int delta = 0;         // vread: first page relative to the mapping
    unsigned off = 0;      // vread: byte offset in the first page (% page)
    unsigned len = 0;      // vread: bytes
    unsigned cpu = 0;      // purge, switch_cpu: possible CPU index % n
    bad_kind bad = bad_kind::unknown;
    std::uint8_t arg = 0;  // bad_unmap: variation
    bool rcu_poll = false; // opcode bit 4: run ready RCU callbacks afterwards
    std::uint8_t sub = 0;  // opcode bits 5-7 (vmap_threads)
    // map: an allocation planned to fail (harness/faults.hpp), or none.
    std::optional<vmap::fault_site> fault;
};

// What a header byte missing from a short input decodes as.
using header_bytes = std::uint8_t[3];
inline constexpr header_bytes default_header = {1, 0, 255};

struct scenario {
    // mask, flags, range as decoded
    std::uint8_t header[3] = {default_header[0], default_header[1], default_header[2]};
    vmap::config cfg;
    bool error_paths = false;
    std::vector<op> ops;
};

// Reads bytes front to back; take() fails once the input is used up.
class byte_reader {
  public:
    explicit byte_reader(std::span<const std::uint8_t> in)
        : p_(in.data()), end_(in.data() + in.size()) {}
    bool take(std::uint8_t& b) {
        if (p_ == end_)
            return false;
        b = *p_++;
        return true;
    }
    bool empty() const { return p_ == end_; }
    std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

  private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

inline vmap::config decode_config(std::uint8_t mask, std::uint8_t flags, std::uint8_t range,
                                  bool& error_paths) {
    vmap::config c;
    c.possible = mask ? vmap::cpu_mask::from_bits(mask) : vmap::cpu_mask{0};
    c.scheme = (flags & 1) ? vmap::vb_scheme::global : vmap::vb_scheme::per_cpu_hashed;
    bool dense = range < 240 ? (range / 24) & 1 : range & 1;
    c.key = (flags & 2) ? vmap::vb_key::va_start
            : dense     ? vmap::vb_key::dense
                        : vmap::vb_key::block_index;
    static constexpr unsigned shifts[] = {6, 8, 10, 12};
    c.page_shift = shifts[(flags >> 2) & 3];
    c.bbmap_bits = 128u << ((flags >> 4) & 3);
    unsigned long block = static_cast<unsigned long>(c.bbmap_bits) << c.page_shift;
    c.vmalloc_start = vmap::default_vmalloc_start + ((flags & 0x40) ? (1UL << c.page_shift) : 0);
    c.vmalloc_size = range < 240 ? (range % 24 + 2) * block : vmap::default_vmalloc_size;
    unsigned lifecycle = range < 240 ? (range / 24u) >> 1 : (range - 240u) >> 1;
    c.vmap_nodes = (lifecycle & 1) ? 0 : 1;
    static constexpr unsigned long lazy_blocks[] = {0, 1, 4};
    unsigned lazy = (lifecycle >> 1) & 3;
    c.lazy_max_pages = lazy == 3 ? 1 : lazy_blocks[lazy] * c.bbmap_bits;
    error_paths = flags & 0x80;
    c.on_bug = error_paths ? vmap::bug_policy::report : vmap::bug_policy::abort;
    // Valid calls only: the kernel's behaviour, no strict layer. Error
    // paths: the strict layer answers the misuse.
    c.strict = error_paths;
    c.inject_fault = inject_planned_fault;
    c.warn_handler = nullptr;
    return c;
}

inline unsigned decode_count(std::uint8_t k, bool error_paths) {
    if (k < 96)
        return 1;
    if (k < 224)
        return 2 + (k - 96) % 63;
    if (k < 252)
        return 65 + (k - 224) * 3u;
    return error_paths ? 0 : 1;
}

// Decodes ops until the input ends. The header is decoded by the caller.
inline std::vector<op> decode_ops(byte_reader& r, bool error_paths) {
    std::vector<op> ops;
    std::uint8_t c, a, b, d, e;
    while (r.take(c)) {
        op o;
        switch (c % 16) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
            if (!r.take(a) || !r.take(b))
                return ops;
            o.kind = op_kind::map;
            o.count = decode_count(a, error_paths);
            o.fill = b;
            break;
        case 6:
        case 7:
        case 8:
            if (!r.take(a))
                return ops;
            o.kind = op_kind::unmap;
            o.handle = a;
            break;
        case 9:
            if (!r.take(a) || !r.take(b) || !r.take(d) || !r.take(e))
                return ops;
            o.kind = op_kind::vread;
            o.handle = a;
            o.delta = static_cast<std::int8_t>(b);
            o.off = d;
            o.len = (e + 1u) * 16;
            break;
        case 10:
            o.kind = op_kind::unmap_aliases;
            break;
        case 11:
        case 12:
            if (!r.take(a))
                return ops;
            o.kind = c % 16 == 11 ? op_kind::purge : op_kind::switch_cpu;
            o.cpu = a;
            break;
        case 13:
            if (!r.take(a) || !r.take(b) || !r.take(d))
                return ops;
            o.handle = b;
            if (error_paths) {
                o.kind = op_kind::bad_unmap;
                o.bad = static_cast<bad_kind>(a % static_cast<unsigned>(bad_kind::count_));
                o.arg = d;
            } else {
                o.kind = op_kind::unmap;
            }
            break;
        case 14:
            o.kind = c < 128 ? op_kind::check : op_kind::drain;
            break;
        default:
            o.kind = c < 128 ? op_kind::purge_all : op_kind::shrink;
            break;
        }
        o.rcu_poll = (c & 0x10) != 0;
        // Bit 7 of opcodes 14 and 15 chose drain/shrink: not part of sub.
        o.sub = static_cast<std::uint8_t>(
            (c >> 5) & (o.kind == op_kind::drain || o.kind == op_kind::shrink ? 3 : 7));
        // A map whose sub is 7 plans a fault, at the site fill % 3 names.
        if (o.kind == op_kind::map && o.sub == 7)
            o.fault = static_cast<vmap::fault_site>(o.fill % 3);
        ops.push_back(o);
    }
    return ops;
}

inline scenario decode(std::span<const std::uint8_t> input) {
    scenario s;
    byte_reader r(input);
    // A short header keeps defaults for what is missing: still a scenario.
    r.take(s.header[0]) && r.take(s.header[1]) && r.take(s.header[2]);
    s.cfg = decode_config(s.header[0], s.header[1], s.header[2], s.error_paths);
    s.ops = decode_ops(r, s.error_paths);
    return s;
}

inline const char* to_string(bad_kind b) {
    static constexpr const char* names[] = {"null_addr", "below_range", "above_range",
                                            "unaligned", "zero_count",  "wrong_count",
                                            "interior",  "unknown",     "double_unmap"};
    return names[static_cast<unsigned>(b)];
}

inline std::string to_string_base(const op& o);

inline std::string to_string(const op& o) {
    std::string s = to_string_base(o);
    if (o.sub)
        s += " sub=" + std::to_string(o.sub);
    return o.rcu_poll ? s + " +rcu_poll" : s;
}

inline std::string to_string_base(const op& o) {
    switch (o.kind) {
    case op_kind::map:
        return "map count=" + std::to_string(o.count) + " fill=" + std::to_string(o.fill) +
               (o.fault ? std::string(" fail=") + vmap::to_string(*o.fault) : "");
    case op_kind::unmap:
        return "unmap handle=" + std::to_string(o.handle);
    case op_kind::vread:
        return "vread handle=" + std::to_string(o.handle) + " delta=" + std::to_string(o.delta) +
               " off=" + std::to_string(o.off) + " len=" + std::to_string(o.len);
    case op_kind::unmap_aliases:
        return "vm_unmap_aliases";
    case op_kind::purge:
        return "purge cpu=" + std::to_string(o.cpu);
    case op_kind::switch_cpu:
        return "switch_cpu cpu=" + std::to_string(o.cpu);
    case op_kind::bad_unmap:
        return std::string("bad_unmap ") + to_string(o.bad) +
               " handle=" + std::to_string(o.handle) + " arg=" + std::to_string(o.arg);
    case op_kind::check:
        return "check";
    case op_kind::purge_all:
        return "purge_all";
    case op_kind::drain:
        return "drain_work";
    case op_kind::shrink:
        return "shrink";
    }
    return "?";
}

inline std::string describe(const vmap::config& c, bool error_paths) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "possible=%s scheme=%s key=%s page_shift=%u bbmap_bits=%u start=%#lx size=%#lx "
                  "vmap_nodes=%u lazy_max_pages=%lu error_paths=%d",
                  c.possible.to_string().c_str(), vmap::to_string(c.scheme), vmap::to_string(c.key),
                  c.page_shift, c.bbmap_bits, c.vmalloc_start, c.vmalloc_size, c.vmap_nodes,
                  c.lazy_max_pages, error_paths ? 1 : 0);
    return buf;
}

} // namespace harness
