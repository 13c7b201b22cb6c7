// SPDX-License-Identifier: MIT
// fuzz/xarray_ops.cpp: the xarray against std::map; node count and height
// against the radix-tree formula after every operation.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "harness/xa_ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<harness::xa_op> ops = harness::decode_xa_ops({data, size});
    harness::xa_checker c;
    std::string err;
    for (std::size_t i = 0; i < ops.size() && err.empty(); ++i)
        err = c.step(ops[i], i);
    if (err.empty())
        err = c.finish();
    if (!err.empty()) {
        std::fprintf(stderr, "xarray_ops: %s\n", err.c_str());
        std::abort();
    }
    return 0;
}
