// SPDX-License-Identifier: MIT
// fuzz/vmap_ops.cpp: single-threaded operation sequences on an allocator
// whose configuration also comes from the input (harness/ops.hpp has the
// encoding), checked against the reference model after every operation.
#include <cstddef>
#include <cstdint>

#include "harness/runner.hpp"

// The pinned fuzzer's padding of short inputs (fuzz/pin_mutator.cpp).
const harness::header_bytes& pin_header_defaults() {
    return harness::default_header;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    harness::scenario s = harness::decode({data, size});
    harness::runner r(s.cfg, s.error_paths);
    r.run(s.ops);
    return 0;
}
