// Replay driver for fuzz targets built without libFuzzer (VMAP_FUZZ=OFF).
//
// Usage: <fuzzer> [-flag ...] [file-or-directory ...]
//   Every regular file named (directories: recursively, in sorted order) is passed once to
//   LLVMFuzzerTestOneInput. Arguments starting with '-' (libFuzzer flags) are ignored, so
//   the same command line works for both builds. Without inputs, one empty input is run.
//   Sanitizer findings abort the process as usual; exit status 0 means all inputs ran.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

int run_one(const std::vector<char>& bytes) {
    // Copy into an exactly sized heap buffer so ASan catches reads past the end.
    auto* buf = new std::uint8_t[bytes.size() == 0 ? 1 : bytes.size()];
    std::copy(bytes.begin(), bytes.end(), buf);
    int rc = LLVMFuzzerTestOneInput(bytes.empty() ? nullptr : buf, bytes.size());
    delete[] buf;
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    if (LLVMFuzzerInitialize != nullptr) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    namespace fs = std::filesystem;
    std::vector<fs::path> inputs;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (!arg.empty() && arg[0] == '-') {
            continue;
        }
        fs::path p(arg);
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<fs::path> found;
            for (const auto& e : fs::recursive_directory_iterator(p)) {
                if (e.is_regular_file()) {
                    found.push_back(e.path());
                }
            }
            std::sort(found.begin(), found.end());
            inputs.insert(inputs.end(), found.begin(), found.end());
        } else if (fs::is_regular_file(p, ec)) {
            inputs.push_back(p);
        } else {
            std::fprintf(stderr, "replay: no such file or directory: %s\n", arg.c_str());
            return 2;
        }
    }

    if (inputs.empty()) {
        std::fprintf(stderr, "replay: no inputs given, running one empty input\n");
        run_one({});
        return 0;
    }
    for (const auto& p : inputs) {
        std::ifstream in(p, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
            return 2;
        }
        std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", p.c_str(), bytes.size());
        run_one(bytes);
    }
    std::fprintf(stderr, "replay: %zu input(s) ran without a finding\n", inputs.size());
    return 0;
}
