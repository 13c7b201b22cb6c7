#!/usr/bin/env python3
"""Writes the hand-made seed inputs of corpus/<target>/ (seed-*), each a
small scenario aimed at one path of the allocator. The encoding is the one
documented in fuzz/harness/ops.hpp (vmap_ops), fuzz/harness/xa_ops.hpp
(xarray_ops) and fuzz/cpu_hash.cpp. Run from anywhere; it rewrites only
seed-* files. Inputs libFuzzer adds by merging keep their hash names."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- vmap_ops -------------------------------------------------------------
SCHEME_GLOBAL, KEY_VA_START = 0x01, 0x02
PAGE = {6: 0 << 2, 8: 1 << 2, 10: 2 << 2, 12: 3 << 2}
BITS = {128: 0 << 4, 256: 1 << 4, 512: 2 << 4, 1024: 3 << 4}
UNALIGNED_START, ERROR_PATHS = 0x40, 0x80
FULL_RANGE = 255


# The lifecycle knobs in the range byte: bit 0 one node per possible CPU
# (pools in use), bits 1-2 lazy_max_pages (0 the kernel's, 1 one block,
# 2 four blocks, 3 one page). A small range can say 0..4, the full one 0..7.
NODES, LAZY_BLOCK, LAZY_4, LAZY_1 = 1, 2, 4, 6


def header(mask=0x01, page=6, bits=128, flags=0, blocks=None, lifecycle=None):
    if blocks is None:
        rng = FULL_RANGE if lifecycle is None else 240 + 2 * lifecycle
    else:
        rng = blocks - 2 + 48 * (lifecycle or 0)
    return bytes([mask, PAGE[page] | BITS[bits] | flags, rng])


def count_byte(n):
    if n == 1:
        return 0
    if 2 <= n <= 64:
        return 96 + (n - 2)
    if n >= 65:
        return 224 + (n - 65) // 3
    return 255  # 0 pages (error paths)


def vmap(n, fill=0):
    return bytes([0, count_byte(n), fill & 0xFF])


def unmap(h):
    return bytes([6, h & 0xFF])


def vread(h, delta=0, off=0, units=16):
    return bytes([9, h & 0xFF, delta & 0xFF, off & 0xFF, units - 1])


ALIASES, CHECK, PURGE_ALL = bytes([10]), bytes([14]), bytes([15])
DRAIN, SHRINK = bytes([14 | 0x80]), bytes([15 | 0x80])
RCU_POLL = 0x10  # opcode bit 4: run the ready RCU callbacks after the op


def sub(op, bits):
    """Sets an op's `sub` bits (opcode bits 5-7, read by vmap_threads)."""
    return bytes([op[0] | (bits << 5)]) + op[1:]


def xvread(h, delta=0, off=0, units=16):
    """vmap_threads: read around any thread's live mapping."""
    return sub(vread(h, delta, off, units), 1)


def torture_read(points):
    """vmap_threads: hold the RCU-protected object across 1 or 4 points
    (opcode bit 7 stays clear: ops.hpp gives it to opcodes 14 and 15)."""
    assert points in (1, 4)
    return sub(CHECK, 2 if points == 4 else 0)


TORTURE_WRITE = sub(CHECK, 1)  # vmap_threads: replace it, reclaim the old one


def purge(cpu):
    return bytes([11, cpu])


def switch(cpu):
    return bytes([12, cpu])


def bad(kind, h=0, arg=0):
    return bytes([13, kind, h, arg])


def vmap_ops_seeds():
    s = {}
    s["basic"] = header(page=12, bits=1024) + vmap(1) + vread(0) + unmap(0) + ALIASES
    # One block filled to free == 0 (off every free list), then unmapped:
    # its dirty pages must still be flushed (fc1e0d980037).
    s["full-block"] = header() + vmap(64, 1) + vmap(64, 2) + unmap(0) + unmap(0) + ALIASES
    # Flushed ranges are not flushed again (a09fad96ffb1).
    s["reflush"] = header() + vmap(1) + vmap(1) + unmap(0) + ALIASES + ALIASES
    # Fragmented blocks on both sides of VMAP_PURGE_THRESHOLD (77e50af07f14).
    s["purge-threshold"] = (header() + vmap(64) + vmap(32) + vmap(8) + unmap(0) + unmap(0)
                            + unmap(0) + vmap(4) + unmap(0) + ALIASES + PURGE_ALL)
    # Sparse possible mask {0,2,5}: hash fallback (a34acf30b19b) and queues
    # whose block hashes elsewhere (8c61291fd850).
    sparse = header(mask=0b100101)
    for cpu in range(3):
        sparse += switch(cpu) + vmap(64, cpu) + vmap(40, cpu) + vmap(3, cpu)
    for _ in range(6):
        sparse += unmap(1)
    s["sparse-mask"] = sparse + purge(1) + ALIASES + CHECK
    s["mask-0-2"] = header(mask=0b101) + switch(1) + vmap(64) + vmap(50) + unmap(0) + purge(1) + PURGE_ALL
    s["global-scheme"] = header(mask=0x0F, flags=SCHEME_GLOBAL) + vmap(2) + switch(3) + vmap(5) + unmap(0) + ALIASES
    s["va-start-key"] = header(mask=0x03, flags=KEY_VA_START) + vmap(7) + vmap(64) + unmap(1) + CHECK
    s["unaligned-start"] = header(flags=UNALIGNED_START) + vmap(64) + vmap(64) + vmap(1) + unmap(1) + ALIASES
    # A range of two blocks: exhaustion, purge of all CPUs and retry.
    ex = header(mask=0x03, blocks=2)
    for i in range(6):
        ex += vmap(60, i)
    ex += unmap(0) + unmap(0) + vmap(100) + ALIASES + vmap(65)
    s["exhaust"] = ex
    s["large"] = (header(page=8, bits=256) + vmap(65, 1) + vmap(146, 2) + vread(0, 0xFF, 3, 64)
                  + vread(1, 64, 0, 64) + unmap(0) + unmap(0))
    s["vread-holes"] = header() + vmap(3) + vmap(5) + unmap(0) + vread(0, 0xFE, 9, 200)
    err = header(flags=ERROR_PATHS) + vmap(1) + vmap(70) + vmap(4)
    for kind in range(9):
        err += bad(kind, kind, kind * 17)
    err += unmap(0) + bad(8) + vmap(0)
    s["error-paths"] = err
    # The lazy lifecycle: large and block areas wait on lazy lists until the
    # drain work (due past one block's pages) or vm_unmap_aliases() purges.
    lz = header(mask=0x03, blocks=8, lifecycle=LAZY_BLOCK)
    lz += vmap(100) + vmap(100) + vmap(64) + vmap(64) + unmap(0) + unmap(0) + DRAIN
    lz += vmap(100) + unmap(1) + unmap(0) + unmap(0) + DRAIN + vmap(70) + ALIASES
    s["lazy-drain"] = lz
    # Pools: with a node per CPU a purged area refills its node's pool and
    # is handed out again; the shrinker empties the pools.
    pl = header(mask=0x03, blocks=8, lifecycle=NODES)
    pl += vmap(100) + unmap(0) + ALIASES + vmap(100) + vmap(64) + vmap(64) + unmap(1) + unmap(1)
    pl += ALIASES + vmap(1) + SHRINK + unmap(0) + unmap(0) + ALIASES + vmap(100)
    s["pools"] = pl
    # vm_unmap_aliases() flushes the blocks' dirty ranges and the lazy areas
    # in one range, widened by both.
    s["aliases-widen"] = (header(blocks=8) + vmap(1) + vmap(1) + vmap(100) + unmap(0) + unmap(0)
                          + ALIASES + vmap(100))
    # Exhaustion with lazy areas waiting: the retry needs the lazy purge.
    ex = header(mask=0x03, blocks=3, lifecycle=NODES)
    for i in range(3):
        ex += vmap(100, i)
    ex += unmap(0) + unmap(0) + vmap(100) + vmap(120) + unmap(0) + vmap(64) + vmap(64)
    s["exhaust-lazy"] = ex
    # A fragmented block on CPU 1 (free + dirty == BITS), then CPU 0 exhausts
    # a two-block range: only the purge of every CPU makes room.
    s["exhaust-other-cpu"] = (header(mask=0x03, blocks=2) + switch(1) + vmap(60, 1) + vmap(1, 2)
                              + unmap(0) + unmap(0) + switch(0) + vmap(64, 3) + vmap(64, 4)
                              + vmap(1, 5) + vmap(2, 6))
    # 65 blocks in one queue: the 65th block's index (64) makes its xarray
    # grow from a node root (xas_expand() over a node). Two 64-page maps per
    # 128-page block, one CPU, the full range: 393 bytes, where the longest
    # fuzzed input in the corpus was 57, which is why none had reached it
    # (findings/README.md).
    s["xarray-grow"] = header(mask=0x01, bits=128) + b"".join(vmap(64, i) for i in range(130))
    # The same, with every op running the ready RCU callbacks after it.
    s["rcu-poll"] = b"".join([header(mask=0x03, blocks=3)] + [bytes([op[0] | RCU_POLL]) + op[1:] for op in (
        vmap(64), vmap(64), unmap(0), unmap(0), vmap(1), ALIASES, PURGE_ALL)])
    return s


# ---- xarray_ops --------------------------------------------------------------
INSERT, ERASE, LOAD, TOGGLE = 0, 1, 2, 3


def xa(op, key):
    if key < 64:
        return bytes([op, key])
    if key < 1 << 16:
        return bytes([op | 1 << 2]) + struct.pack(">H", key)
    if key < 1 << 24:
        return bytes([op | 2 << 2]) + struct.pack(">I", key)[1:]
    return bytes([op | 3 << 2]) + struct.pack(">Q", key)


def xarray_ops_seeds():
    s = {}
    s["grow-shrink"] = (xa(INSERT, 0) + xa(INSERT, 63) + xa(INSERT, 64) + xa(INSERT, 4095)
                        + xa(ERASE, 4095) + xa(ERASE, 64) + xa(ERASE, 63) + xa(LOAD, 0) + xa(ERASE, 0))
    s["block-index-32tib"] = xa(INSERT, (1 << 23) - 1) + xa(INSERT, 5) + xa(ERASE, (1 << 23) - 1)
    s["va-start-11-levels"] = xa(INSERT, 0xFFFFC90000000000) + xa(LOAD, 0xFFFFC90000000000) + xa(ERASE, 0xFFFFC90000000000)
    s["busy"] = xa(INSERT, 7) + xa(INSERT, 7) + xa(TOGGLE, 7) + xa(TOGGLE, 7)
    s["stride"] = b"".join(xa(INSERT, k * 64) for k in range(40)) + b"".join(xa(ERASE, k * 64) for k in range(0, 40, 3))
    return s


# ---- cpu_hash ------------------------------------------------------------------
def cpu_hash_seeds():
    addrs = b"".join(struct.pack(">Q", a) for a in (0, 4 << 20, 1 << 40, 0xFFFFFFFFFFFF, 12345 << 22))
    s = {}
    for name, mask in (("mask-0-2", 0b101), ("mask-0-2-5", 0b100101), ("mask-1", 0b1),
                       ("mask-64", (1 << 64) - 1), ("mask-high", 1 << 63 | 1 << 2)):
        s[name] = struct.pack(">Q", mask) + bytes([0]) + addrs
    s["mask-0-2-global"] = struct.pack(">Q", 0b101) + bytes([1]) + addrs
    return s


# ---- vmap_threads ---------------------------------------------------------------
def threads(mask, flags, rng, cpus, ops, choices):
    """ops are vmap_ops operation bytes, dealt round-robin to the threads."""
    ops = ops + bytes((-len(ops)) % 4)  # whole 4-byte units
    return bytes([mask, flags, rng, len(cpus) - 2, *cpus, len(ops) // 4 - 1]) + ops + bytes(choices)


def vmap_threads_seeds():
    s = {}
    alt = [1, 3] * 64  # odd choices: switch threads at every point
    # Two threads on one CPU share a free list: the lockless pre-check races
    # with the other's allocation (43d7650234c6).
    s["shared-cpu"] = threads(0x01, 0, 255, [0, 0], vmap(1) + vmap(1) + vmap(2) + vmap(3) + unmap(0) + unmap(0), alt)
    # Frees and vm_unmap_aliases on another thread: purge walks another
    # queue's blocks (8c61291fd850), reads vb->cpu (3e3de7947c75) and vb->va
    # of dying blocks (ad216c0316ad).
    s["purge-race"] = threads(0b101, 0, 255, [0, 1, 0],
                              vmap(64) + vmap(63) + ALIASES + unmap(0) + vmap(1) + ALIASES
                              + unmap(0) + PURGE_ALL + ALIASES, alt)
    s["sparse-4"] = threads(0b100101, 0, 6, [0, 1, 2, 2],
                            vmap(60) + vmap(60) + vmap(60) + vmap(60) + unmap(0) + unmap(0) + ALIASES
                            + vmap(100) + unmap(0) + purge(2), [5, 9, 2, 7] * 32)
    # A purge refilling a pool while the shrinker decays it (ec05f51f1e65):
    # thread 0 maps, frees and purges large areas of one size, thread 1
    # runs the shrinker between.
    t0 = [vmap(100), vmap(100), unmap(0), ALIASES, unmap(0), ALIASES, vmap(100), unmap(0), DRAIN]
    t1 = [SHRINK] * len(t0)
    ops = b"".join(a + b for a, b in zip(t0, t1))
    s["pool-shrinker"] = threads(0x03, 0, 6 + 48 * NODES, [0, 1], ops, alt)
    # The drain work on one thread while others map and free.
    s["drain-race"] = threads(0x03, 0, 6 + 48 * (NODES | LAZY_BLOCK), [0, 1, 0],
                              vmap(100) + vmap(3) + DRAIN + unmap(0) + unmap(0) + DRAIN + vmap(64)
                              + ALIASES + DRAIN, [3, 8, 1, 6] * 32)
    # rcutorture: thread 0 holds the RCU-protected object across points
    # while thread 1 replaces it; blocks freed meanwhile (rcu::call) too.
    s["rcu-torture"] = threads(0x01, 0, 255, [0, 0],
                               torture_read(4) + TORTURE_WRITE + torture_read(4) + TORTURE_WRITE
                               + vmap(64) + vmap(1) + vmap(64) + vmap(1) + unmap(0) + unmap(0)
                               + torture_read(1) + TORTURE_WRITE, [1, 3, 0x81, 0x83] * 32)
    # Thread 0 is stopped while it holds the object; thread 1 replaces it
    # and ends the grace period as soon as it may (choice bit 7).
    s["rcu-torture-hold"] = threads(0x01, 0, 255, [0, 0],
                                    torture_read(4) + TORTURE_WRITE + torture_read(4) + TORTURE_WRITE,
                                    [1, 0, 3, 0, 0x80, 0x80, 0x81, 0] * 16)
    # Blocks freed on one thread while the other walks them (vb_alloc's
    # list walk, vread, purge), grace periods ended by the choices' bit 7.
    s["rcu-blocks"] = threads(0x01, 0, 6, [0, 0],
                              vmap(64) + vmap(1) + vmap(64) + xvread(0) + unmap(0) + vmap(2)
                              + unmap(0) + xvread(0, 0xFF) + unmap(0) + ALIASES + PURGE_ALL
                              + vmap(1), [0x81, 0x83, 0x01, 0x85] * 32)
    # The /proc/kcore reader: thread 1 reads thread 0's mappings (and the
    # holes around them) while thread 0 maps and unmaps them.
    s["cross-read"] = threads(0x03, 0, 255, [0, 1],
                              vmap(3, 1) + xvread(0) + vmap(64, 2) + xvread(1, 0xFF, 5, 64)
                              + unmap(0) + xvread(0, 1, 0, 200) + vmap(1, 3) + xvread(0)
                              + unmap(0) + xvread(0, 0xFE, 9, 255), alt)
    # The same with long turns: each thread keeps running for 8 decisions
    # before the other gets one, so one side completes whole calls (an
    # unmap) while the other is stopped inside one (a vread).
    s["cross-read-turns"] = threads(0x03, 0, 255, [0, 1],
                                    vmap(3, 1) + xvread(0) + vmap(64, 2) + xvread(1, 0, 5, 64)
                                    + unmap(0) + xvread(0) + unmap(0) + xvread(0)
                                    + vmap(1, 3) + xvread(0, 0, 0, 64),
                                    ([3] + [0] * 8 + [1] + [0] * 8) * 8)
    s["cross-read-large"] = threads(0x01, 0, 255, [0, 0],
                                    vmap(70, 7) + xvread(0, 0, 0, 128) + unmap(0) + xvread(0)
                                    + vmap(65, 8) + xvread(0, 0xFF, 0, 255), alt)
    # Seed xarray-grow of vmap_ops with two threads on CPU 0's queue: the
    # 65th block's insert grows the xarray from a node root while the other
    # thread reads across mappings (vread's lockless xa_load under RCU).
    grow = b"".join(vmap(64, i) for i in range(126))
    grow += (vmap(64, 126) + xvread(0) + vmap(64, 127) + xvread(1, 0, 0, 64) + vmap(64, 128)
             + unmap(0) + vmap(64, 129) + xvread(2))
    s["xarray-grow"] = threads(0x01, 0, 255, [0, 0], grow, alt)
    # Exhaustion on one CPU while the other holds a fragmented block.
    s["exhaust-threads"] = threads(0x03, 0, 0, [1, 0],
                                   vmap(60) + vmap(64) + vmap(1) + vmap(64) + unmap(0) + vmap(1)
                                   + unmap(0) + vmap(1) + vmap(1) + vmap(2), [0] * 64)
    return s


def write(target, seeds):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("vmap_ops", vmap_ops_seeds())
    write("xarray_ops", xarray_ops_seeds())
    write("cpu_hash", cpu_hash_seeds())
    write("vmap_threads", vmap_threads_seeds())
