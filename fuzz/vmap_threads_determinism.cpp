// SPDX-License-Identifier: MIT
// fuzz/vmap_threads_determinism.cpp: one vmap_threads input, replayed 100
// times, must give the same scheduling decisions and the same results.
#include <cstdint>
#include <cstdio>
#include <span>
#include <utility>
#include <vector>

std::pair<std::vector<std::uint8_t>, std::uint64_t>
run_vmap_threads(std::span<const std::uint8_t> in);

int main() {
    // Four threads on a sparse mask {0, 2, 5}, a small range, a busy op mix;
    // the choices run out early, so the seeded generator is covered too.
    std::vector<std::uint8_t> in = {0x25, 0x00, 0x04, 0x02, 0, 1, 2, 2, 40};
    for (unsigned i = 0; i < 164; ++i)
        in.push_back(static_cast<std::uint8_t>(i * 37 + 11));
    for (unsigned i = 0; i < 64; ++i)
        in.push_back(static_cast<std::uint8_t>(i * 101 + 7));
    auto first = run_vmap_threads(in);
    unsigned passed = 0, failed = 0;
    for (int run = 0; run < 100; ++run) {
        auto again = run_vmap_threads(in);
        if (again == first)
            ++passed;
        else
            ++failed;
    }
    std::printf("vmap_threads determinism: %zu decisions, digest %#llx\n", first.first.size(),
                static_cast<unsigned long long>(first.second));
    std::printf("%u passed, %u failed\n", passed, failed);
    return failed == 0 && first.first.size() > 100 ? 0 : 1;
}
