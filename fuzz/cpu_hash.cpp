// SPDX-License-Identifier: MIT
// fuzz/cpu_hash.cpp: addr_to_vb_xa() over random possible masks and
// addresses. The hash must always name a possible CPU, whose queue exists,
// the same queue and key for every address of a block, and an entry put in
// through one address must be found and erased through any other of its
// block. (The per-CPU storage check turns an impossible CPU into a named
// fatal error: CVE-2024-41032.)
//
// Encoding: 8 bytes possible mask (bit i = CPU i; 0 means {0}), 1 byte
// flags (bit 0 global scheme, bit 1 va_start key, bits 2-3 bbmap_bits
// 128 << n, bit 4 the dense key when bit 1 is clear), then 8-byte
// addresses, each taken modulo the 32 TiB range.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "harness/ops.hpp"

namespace {
[[noreturn]] void die(const std::string& what, unsigned long addr, const vmap::allocator& a) {
    std::fprintf(stderr, "cpu_hash: address %#lx, mask %s: %s\n", addr,
                 a.cpus().mask().to_string().c_str(), what.c_str());
    std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    harness::byte_reader r({data, size});
    std::uint64_t mask = 0;
    std::uint8_t b = 0, flags = 0;
    for (int i = 0; i < 8; ++i)
        if (r.take(b))
            mask = mask << 8 | b;
    r.take(flags);
    vmap::config cfg;
    cfg.possible = mask ? vmap::cpu_mask::from_bits(mask) : vmap::cpu_mask{0};
    cfg.scheme = (flags & 1) ? vmap::vb_scheme::global : vmap::vb_scheme::per_cpu_hashed;
    cfg.key = (flags & 2)    ? vmap::vb_key::va_start
              : (flags & 16) ? vmap::vb_key::dense
                             : vmap::vb_key::block_index;
    cfg.bbmap_bits = 128u << ((flags >> 2) & 3);
    vmap::allocator a(cfg);
    vmap::vmap_block sentinel(a.bbmap_bits());
    for (;;) {
        std::uint64_t raw = 0;
        int got = 0;
        for (; got < 8 && r.take(b); ++got)
            raw = raw << 8 | b;
        if (got < 8)
            break;
        unsigned long addr = a.vmalloc_start() + raw % (a.vmalloc_end() - a.vmalloc_start());
        unsigned long block = addr & ~(a.block_size() - 1);
        unsigned cpu = a.addr_to_vb_cpu(addr);
        if (!a.cpus().possible(cpu))
            die("hash names CPU " + std::to_string(cpu) + ", not a possible CPU", addr, a);
        if (cfg.scheme == vmap::vb_scheme::per_cpu_hashed &&
            &a.addr_to_vb_xa(addr) != &a.queue(cpu).vmap_blocks)
            die("addr_to_vb_xa is not the xarray of the hashed queue", addr, a);
        unsigned long other = block + (raw >> 32) % a.block_size();
        if (a.addr_to_vb_cpu(other) != cpu || a.addr_to_vb_idx(other) != a.addr_to_vb_idx(addr))
            die("two addresses of one block hash or key differently", addr, a);
        if (a.addr_to_vb_xa(addr).insert(a.addr_to_vb_idx(addr), &sentinel) !=
            vmap::xa_insert_result::ok)
            die("insert into an empty allocator's xarray failed", addr, a);
        if (a.addr_to_vb_xa(other).load(a.addr_to_vb_idx(other)) != &sentinel)
            die("an entry inserted through one address is not loaded through another", addr, a);
        if (a.addr_to_vb_xa(other).erase(a.addr_to_vb_idx(other)) != &sentinel)
            die("erase through another address of the block missed the entry", addr, a);
    }
    return 0;
}
