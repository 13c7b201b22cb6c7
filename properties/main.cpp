// SPDX-License-Identifier: MIT
// properties/main.cpp: the suites' main. GoogleTest's, plus the suites'
// default depth: 500 cases per property (RapidCheck's own default is 100).
// RC_PARAMS from the environment still decides: its settings are appended
// after ours, and RapidCheck keeps the last value of a key, so
// RC_PARAMS="max_success=2000" (deep mode) or RC_PARAMS="reproduce=..."
// behave as documented (README.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace {
constexpr const char* default_params = "max_success=500";
}

int main(int argc, char** argv) {
    std::string params = default_params;
    if (const char* user = std::getenv("RC_PARAMS"); user && *user)
        params += std::string(" ") + user;
    // Before any property runs: RapidCheck reads RC_PARAMS on first use.
    setenv("RC_PARAMS", params.c_str(), 1);
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
