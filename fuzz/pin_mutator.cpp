// SPDX-License-Identifier: MIT
// fuzz/pin_mutator.cpp: the pinned fuzzers' half (vmap_ops_pinned,
// vmap_threads_pinned; built on demand, ci/fuzz --pin). libFuzzer's own
// mutations, then the header rewritten to the pin in VMAP_FUZZ_PIN
// (harness/pin.hpp). Linked beside the ordinary target's source, so the
// entry point and every check are the ordinary target's; only the search is
// narrowed. Kept out of the ordinary binaries because libFuzzer changes its
// defaults (-len_control) when a custom mutator exists: ci/fuzz passes
// libFuzzer's default back explicitly.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "harness/pin.hpp"

// Defined beside the target's decoder: what it reads a missing header byte as.
const harness::header_bytes& pin_header_defaults();

namespace {
harness::pin the_pin;
} // namespace

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* spec = std::getenv("VMAP_FUZZ_PIN");
    std::string error;
    if (!harness::parse_pin(spec ? spec : "", the_pin, error)) {
        std::fprintf(stderr, "VMAP_FUZZ_PIN: %s\n", error.c_str());
        std::exit(2);
    }
    std::fprintf(stderr, "VMAP_FUZZ_PIN: %s\n",
                 the_pin.empty() ? "(none: the whole input space)" : spec);
    return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned /*seed*/) {
    size = LLVMFuzzerMutate(data, size, max_size);
    return harness::pin_input(the_pin, data, size, max_size, pin_header_defaults());
}
