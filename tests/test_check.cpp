// SPDX-License-Identifier: MIT
// tests/test_check.cpp: vmap/check.hpp - WARN_ON, WARN_ON_ONCE, BUG_ON, BUG and
// the warn/bug policies of vmap::diagnostics.
#include <string>
#include <vector>

#include <vmap/check.hpp>

#include "test_support.hpp"

namespace {

using vmap::bug_policy;
using vmap::check_site;
using vmap::diagnostics;
using vmap::warn_policy;

// One call site per macro. The condition expressions have distinct names so
// diagnostics::find() can tell the records apart.
bool once_site(diagnostics& d, bool once_cond) {
    return VMAP_WARN_ON_ONCE(d, once_cond, "once-site");
}
bool other_once_site(diagnostics& d, bool other_cond) {
    return VMAP_WARN_ON_ONCE(d, other_cond, "other-once-site");
}
constexpr int warn_site_line = __LINE__ + 2;
bool warn_site(diagnostics& d, bool warn_cond) {
    return VMAP_WARN_ON(d, warn_cond, "every-site");
}
constexpr int bug_site_line = __LINE__ + 2;
bool bug_site(diagnostics& d, bool bug_cond) {
    return VMAP_BUG_ON(d, bug_cond, "bug-site " + std::to_string(42));
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + 1))
        ++n;
    return n;
}

std::string file_line_regex(int line) {
    return vmap_test::regex_escape(__FILE__) + ":" + std::to_string(line);
}

TEST(Check, FalseConditionsDoNothing) {
    diagnostics d(warn_policy::abort, bug_policy::abort);
    EXPECT_FALSE(once_site(d, false));
    EXPECT_FALSE(warn_site(d, false));
    EXPECT_FALSE(bug_site(d, false));
    EXPECT_EQ(d.warn_hits(), 0u);
    EXPECT_EQ(d.bug_count(), 0u);
    EXPECT_TRUE(d.records().empty());
}

TEST(Check, WarnOnOnceFiresOncePerSiteButCountsEveryHit) {
    diagnostics d;
    testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(once_site(d, true));
    EXPECT_FALSE(once_site(d, false));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "vmap: WARNING at "), 1u) << err;
    EXPECT_EQ(count_of(err, "once_cond: once-site"), 1u) << err;
    EXPECT_EQ(d.warn_hits(), 3u);
    vmap::site_record r = d.find("once_cond");
    ASSERT_NE(r.site, nullptr);
    EXPECT_EQ(r.hits, 3u);
    EXPECT_EQ(r.fired, 1u);
    EXPECT_TRUE(r.site->once);
    EXPECT_EQ(r.message, "once-site");
}

TEST(Check, WarnOnOnceIsPerSite) {
    diagnostics d;
    testing::internal::CaptureStderr();
    once_site(d, true);
    other_once_site(d, true);
    once_site(d, true);
    other_once_site(d, true);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "vmap: WARNING at "), 2u) << err;
    EXPECT_EQ(d.find("once_cond").fired, 1u);
    EXPECT_EQ(d.find("other_cond").fired, 1u);
    EXPECT_EQ(d.find("other_cond").hits, 2u);
    EXPECT_EQ(d.warn_hits(), 4u);
    EXPECT_EQ(d.records().size(), 2u);
}

TEST(Check, WarnOnOnceIsPerInstance) {
    diagnostics first, second;
    testing::internal::CaptureStderr();
    once_site(first, true);
    once_site(first, true);
    once_site(second, true);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "vmap: WARNING at "), 2u) << err;
    EXPECT_EQ(first.find("once_cond").fired, 1u);
    EXPECT_EQ(first.find("once_cond").hits, 2u);
    EXPECT_EQ(second.find("once_cond").fired, 1u);
    EXPECT_EQ(second.find("once_cond").hits, 1u);
    EXPECT_EQ(second.warn_hits(), 1u);
}

TEST(Check, WarnOnFiresEveryTime) {
    diagnostics d;
    testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(warn_site(d, true));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "warn_cond: every-site"), 3u) << err;
    EXPECT_EQ(count_of(err, __FILE__ ":" + std::to_string(warn_site_line)), 3u) << err;
    vmap::site_record r = d.find("warn_cond");
    EXPECT_EQ(r.hits, 3u);
    EXPECT_EQ(r.fired, 3u);
    EXPECT_FALSE(r.site->once);
    EXPECT_EQ(d.warn_hits(), 3u);
}

TEST(Check, MacroEvaluatesItsConditionOnce) {
    diagnostics d(warn_policy::count, bug_policy::report);
    int evaluated = 0;
    testing::internal::CaptureStderr();
    EXPECT_TRUE(VMAP_WARN_ON(d, ++evaluated > 0, "side effect"));
    EXPECT_TRUE(VMAP_BUG_ON(d, ++evaluated > 0, "side effect"));
    EXPECT_FALSE(VMAP_WARN_ON_ONCE(d, ++evaluated < 0, "side effect"));
    testing::internal::GetCapturedStderr();
    EXPECT_EQ(evaluated, 3);
}

TEST(Check, MessageIsOnlyBuiltWhenTheConditionHolds) {
    diagnostics d;
    int built = 0;
    auto msg = [&] {
        ++built;
        return std::string("expensive");
    };
    EXPECT_FALSE(VMAP_WARN_ON(d, false, msg()));
    EXPECT_EQ(built, 0);
}

TEST(Check, HandlerPolicyCallsTheHandlerInsteadOfPrinting) {
    std::vector<std::string> seen;
    std::vector<int> lines;
    diagnostics d(warn_policy::handler, bug_policy::abort,
                  [&](const check_site& site, const std::string& msg) {
                      seen.push_back(std::string(site.expr) + "|" + msg);
                      lines.push_back(site.line);
                  });
    EXPECT_EQ(d.warn_mode(), warn_policy::handler);
    testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i) {
        once_site(d, true);
        warn_site(d, true);
    }
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, "");
    // once_site: handler once; warn_site: three times.
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_EQ(seen[0], "once_cond|once-site");
    EXPECT_EQ(seen[1], "warn_cond|every-site");
    EXPECT_EQ(seen[2], "warn_cond|every-site");
    EXPECT_EQ(seen[3], "warn_cond|every-site");
    EXPECT_EQ(lines[1], warn_site_line);
    EXPECT_EQ(d.warn_hits(), 6u);
}

TEST(Check, CountPolicyPrintsFileLineAndGoesOn) {
    diagnostics d(warn_policy::count);
    testing::internal::CaptureStderr();
    EXPECT_TRUE(warn_site(d, true));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, std::string("vmap: WARNING at ") + __FILE__ + ":" +
                       std::to_string(warn_site_line) + ": warn_cond: every-site\n");
}

TEST(CheckDeathTest, AbortPolicyAbortsOnAWarning) {
    diagnostics d(warn_policy::abort);
    EXPECT_DEATH(warn_site(d, true),
                 "vmap: WARNING at " + file_line_regex(warn_site_line) + ": warn_cond: every-site");
    EXPECT_FALSE(warn_site(d, false)); // a false condition never aborts
}

TEST(CheckDeathTest, AbortPolicyAbortsOnAnOnceWarningToo) {
    diagnostics d(warn_policy::abort);
    EXPECT_DEATH(once_site(d, true), "once_cond: once-site");
}

TEST(CheckDeathTest, BugOnAbortsWithFileLineAndMessage) {
    diagnostics d; // bug_policy::abort is the default
    EXPECT_EQ(d.bug_mode(), bug_policy::abort);
    EXPECT_DEATH(bug_site(d, true),
                 "^vmap: BUG at " + file_line_regex(bug_site_line) + ": bug_cond: bug-site 42\n");
}

TEST(Check, BugOnReportCountsAndReturnsTrue) {
    diagnostics d(warn_policy::count, bug_policy::report);
    testing::internal::CaptureStderr();
    EXPECT_TRUE(bug_site(d, true));
    EXPECT_TRUE(bug_site(d, true));
    EXPECT_FALSE(bug_site(d, false));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err, "");
    EXPECT_EQ(d.bug_count(), 2u);
    EXPECT_EQ(d.warn_hits(), 0u);
    vmap::site_record r = d.find("bug_cond");
    EXPECT_EQ(r.hits, 2u);
    EXPECT_EQ(r.fired, 2u);
    EXPECT_EQ(r.site->line, bug_site_line);
    EXPECT_EQ(r.message, "bug-site 42");
}

TEST(CheckDeathTest, BugIsAlwaysFatal) {
    int line = __LINE__ + 1;
    EXPECT_DEATH(VMAP_BUG(1 + 1 == 2, "invariant"),
                 "vmap: BUG at " + file_line_regex(line) + ": 1 \\+ 1 == 2: invariant");
    VMAP_BUG(1 + 1 == 3, "not taken"); // false: nothing happens
}

TEST(CheckDeathTest, FatalPrintsWithoutAnEmptyMessageSuffix) {
    EXPECT_DEATH(vmap::fatal("f.cpp", 7, "what", ""), "^vmap: BUG at f\\.cpp:7: what\n$");
}

TEST(Check, FindOfAnUnknownSiteIsAZeroRecord) {
    diagnostics d;
    vmap::site_record r = d.find("never_seen");
    EXPECT_EQ(r.site, nullptr);
    EXPECT_EQ(r.hits, 0u);
    EXPECT_EQ(r.fired, 0u);
}

} // namespace
