// SPDX-License-Identifier: MIT
// fuzz/vmap_trace.cpp: vmap-trace, a fuzz input made readable.
//
//   vmap-trace FILE...              the configuration and one line per op
//   vmap-trace --run FILE...        also run it; on a failure, print the
//                                   op, the reason and the allocator's state
//   vmap-trace --emit-test NAME FILE
//                                   print a ready-to-paste GoogleTest that
//                                   replays the same sequence
// Inputs are vmap_ops inputs (harness/ops.hpp); vmap_threads inputs are
// decoded by their own target.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness/runner.hpp"

namespace {

std::vector<std::uint8_t> read_file(const char* path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "vmap-trace: cannot read %s\n", path);
        std::exit(2);
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const char* kind_name(harness::op_kind k) {
    static constexpr const char* names[] = {"map",       "unmap",      "vread",     "unmap_aliases",
                                            "purge",     "switch_cpu", "bad_unmap", "check",
                                            "purge_all", "drain",      "shrink"};
    return names[static_cast<unsigned>(k)];
}

void emit_test(const std::string& name, const harness::scenario& s, const char* path) {
    std::printf("// Replays %s (vmap_ops input), made by vmap-trace --emit-test.\n", path);
    std::printf("// %s\n", harness::describe(s.cfg, s.error_paths).c_str());
    std::printf("TEST(VmapRegression, %s) {\n", name.c_str());
    std::printf("    harness::scenario s;\n");
    std::printf("    s.cfg = harness::decode_config(%#x, %#x, %#x, s.error_paths);\n", s.header[0],
                s.header[1], s.header[2]);
    std::printf("    using K = harness::op_kind;\n");
    std::printf("    s.ops = {\n");
    for (const harness::op& o : s.ops) {
        std::printf("        {.kind = K::%s", kind_name(o.kind));
        if (o.count)
            std::printf(", .count = %u", o.count);
        if (o.fill)
            std::printf(", .fill = %u", o.fill);
        if (o.handle)
            std::printf(", .handle = %u", o.handle);
        if (o.delta)
            std::printf(", .delta = %d", o.delta);
        if (o.off)
            std::printf(", .off = %u", o.off);
        if (o.len)
            std::printf(", .len = %u", o.len);
        if (o.cpu)
            std::printf(", .cpu = %u", o.cpu);
        if (o.kind == harness::op_kind::bad_unmap)
            std::printf(", .bad = harness::bad_kind::%s, .arg = %u", harness::to_string(o.bad),
                        o.arg);
        std::printf("},\n");
    }
    std::printf("    };\n");
    std::printf("    harness::runner r(s.cfg, s.error_paths);\n");
    std::printf("    r.run(s.ops);\n");
    std::printf("}\n");
}

int usage() {
    std::fprintf(stderr, "usage: vmap-trace [--run] FILE...\n"
                         "       vmap-trace --emit-test NAME FILE\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    // Line-buffered even into a pipe or file: a fatal BUG aborts the run,
    // and the trace up to the failing op must survive it.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    bool run = false;
    std::string test_name;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        if (!std::strcmp(argv[i], "--run"))
            run = true;
        else if (!std::strcmp(argv[i], "--emit-test") && i + 1 < argc)
            test_name = argv[++i];
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    int status = 0;
    for (; i < argc; ++i) {
        std::vector<std::uint8_t> bytes = read_file(argv[i]);
        harness::scenario s = harness::decode(bytes);
        if (!test_name.empty()) {
            emit_test(test_name, s, argv[i]);
            continue;
        }
        std::printf("%s: %zu bytes, %zu ops\n  %s\n", argv[i], bytes.size(), s.ops.size(),
                    harness::describe(s.cfg, s.error_paths).c_str());
        if (!run) {
            for (std::size_t n = 0; n < s.ops.size(); ++n)
                std::printf("#%zu %s\n", n, harness::to_string(s.ops[n]).c_str());
            continue;
        }
        harness::runner_options opt;
        opt.verbose = true;
        opt.on_failure = [](const std::string& msg) {
            std::printf("FAILED: %s", msg.c_str());
            std::fflush(stdout);
            std::exit(1);
        };
        harness::runner r(s.cfg, s.error_paths, opt);
        r.run(s.ops);
        std::printf("passed: %zu ops, final checks clean\n", s.ops.size());
    }
    return status;
}
