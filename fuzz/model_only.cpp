// SPDX-License-Identifier: MIT
// fuzz/model_only.cpp: the floor of what any harness must do - the same
// decoder and the same model bookkeeping as vmap_ops, with a bump counter in
// place of the allocator. Not a bug finder: vmap_ops' exec/s is judged
// against this target's (see README: benchmarks).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/model.hpp"
#include "harness/ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    harness::scenario s = harness::decode({data, size});
    harness::model m(1UL << s.cfg.page_shift, s.cfg.max_alloc);
    unsigned long next = s.cfg.vmalloc_start;
    volatile unsigned sink = 0;
    for (const harness::op& o : s.ops) {
        switch (o.kind) {
        case harness::op_kind::map:
            if (o.count) {
                auto mp = m.prepare(o.count, o.fill);
                mp->addr = next;
                next += o.count * m.page_size();
                m.commit(std::move(mp));
            }
            break;
        case harness::op_kind::unmap:
        case harness::op_kind::bad_unmap:
            if (m.live_count())
                m.remove(o.handle);
            break;
        case harness::op_kind::vread:
            if (m.live_count()) {
                unsigned long a = m.at(o.handle).addr + o.off % m.page_size();
                std::vector<std::byte> want(o.len);
                m.expected(a, want);
                sink = sink + static_cast<unsigned>(want[o.len / 2]);
            }
            break;
        case harness::op_kind::unmap_aliases:
            m.flushed(0, ~0UL);
            break;
        default:
            break;
        }
    }
    return 0;
}
