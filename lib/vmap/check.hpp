// SPDX-License-Identifier: MIT
// vmap/check.hpp: WARN_ON / WARN_ON_ONCE / BUG_ON for the port.
//
// The kernel's WARN_ON_ONCE fires once per call site for the life of the
// kernel; here "once" is per allocator instance, so every test starts clean.
// Every hit is counted (fired or not), and what a fired warning does is a
// policy chosen at construction:
//   warn_policy::count   - print one line to stderr and go on (default);
//   warn_policy::abort   - print and abort (fuzzers: a WARN is a finding);
//   warn_policy::handler - call a handler (tests that expect a warning).
//
// BUG_ON marks a state the kernel refuses to continue from. Policy:
//   bug_policy::abort  - print file:line and the message, abort (default);
//   bug_policy::report - count it and let the caller return an error result,
//                        so tests can drive every misuse without dying.
// Only checks at API boundaries (before anything is changed) honour
// bug_policy::report; a broken internal invariant is always fatal (VMAP_BUG).
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace vmap {

enum class warn_policy { count, abort, handler };
enum class bug_policy { abort, report };

// One per WARN/BUG call site (a static object in the macro expansion).
struct check_site {
    const char* file;
    int line;
    const char* expr;
    bool once;
};

struct site_record {
    const check_site* site;
    unsigned long hits;  // times the condition was true
    unsigned long fired; // times the policy acted (1 for a _ONCE site)
    std::string message; // what the first firing said
};

[[noreturn]] inline void fatal(const char* file, int line, const char* what,
                               const std::string& msg) {
    std::fprintf(stderr, "vmap: BUG at %s:%d: %s%s%s\n", file, line, what, msg.empty() ? "" : ": ",
                 msg.c_str());
    std::fflush(stderr);
    std::abort();
}

class diagnostics {
  public:
    using handler_fn = std::function<void(const check_site&, const std::string&)>;

    explicit diagnostics(warn_policy wp = warn_policy::count, bug_policy bp = bug_policy::abort,
                         handler_fn handler = {})
        : warn_policy_(wp), bug_policy_(bp), handler_(std::move(handler)) {}

    warn_policy warn_mode() const { return warn_policy_; }
    bug_policy bug_mode() const { return bug_policy_; }

    // Called when a WARN condition is true. Returns true (the condition).
    bool warn(const check_site& site, const std::string& msg) {
        bool act;
        {
            std::lock_guard<std::mutex> g(mu_);
            site_record& r = record(site);
            ++r.hits;
            act = !site.once || r.fired == 0;
            if (act) {
                ++r.fired;
                if (r.message.empty())
                    r.message = msg;
            }
        }
        warnings_.fetch_add(1, std::memory_order_relaxed);
        if (!act)
            return true;
        if (warn_policy_ == warn_policy::handler && handler_) {
            handler_(site, msg);
            return true;
        }
        std::fprintf(stderr, "vmap: WARNING at %s:%d: %s%s%s\n", site.file, site.line, site.expr,
                     msg.empty() ? "" : ": ", msg.c_str());
        if (warn_policy_ == warn_policy::abort) {
            std::fflush(stderr);
            std::abort();
        }
        return true;
    }

    // Called when a BUG_ON condition is true. Returns only under
    // bug_policy::report, and then returns true (the condition).
    bool bug(const check_site& site, const std::string& msg) {
        if (bug_policy_ == bug_policy::abort)
            fatal(site.file, site.line, site.expr, msg);
        {
            std::lock_guard<std::mutex> g(mu_);
            site_record& r = record(site);
            ++r.hits;
            ++r.fired;
            if (r.message.empty())
                r.message = msg;
        }
        bugs_.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    // Total condition hits of WARN sites, fired or suppressed by _ONCE.
    unsigned long warn_hits() const { return warnings_.load(std::memory_order_relaxed); }
    // BUGs reported under bug_policy::report.
    unsigned long bug_count() const { return bugs_.load(std::memory_order_relaxed); }

    std::vector<site_record> records() const {
        std::lock_guard<std::mutex> g(mu_);
        return records_;
    }

    // The record of the site at file:line whose expression contains `expr`
    // (nullptr: any); a zero record if it never fired.
    site_record find(const char* expr_substring) const {
        std::lock_guard<std::mutex> g(mu_);
        for (const site_record& r : records_)
            if (std::string(r.site->expr).find(expr_substring) != std::string::npos)
                return r;
        return site_record{nullptr, 0, 0, {}};
    }

  private:
    site_record& record(const check_site& site) {
        for (site_record& r : records_)
            if (r.site == &site)
                return r;
        records_.push_back(site_record{&site, 0, 0, {}});
        return records_.back();
    }

    warn_policy warn_policy_;
    bug_policy bug_policy_;
    handler_fn handler_;
    mutable std::mutex mu_;
    std::vector<site_record> records_;
    std::atomic<unsigned long> warnings_{0};
    std::atomic<unsigned long> bugs_{0};
};

} // namespace vmap

// Each macro evaluates `cond` once and yields it as a bool, like the kernel's:
// the test inline and unlikely(), the report (and the message) in a lambda
// called only when it fires, so the hot paths pay one branch.
#define VMAP_CHECK_IMPL_(diag, cond, once, method, msg)                                            \
    (__builtin_expect(!!(cond), 0) ? [&]() -> bool {                                               \
        static constexpr ::vmap::check_site site_{__FILE__, __LINE__, #cond, once};                \
        return (diag).method(site_, (msg));                                                        \
    }()                                                                                            \
                                   : false)

#define VMAP_WARN_ON(diag, cond, msg) VMAP_CHECK_IMPL_(diag, cond, false, warn, msg)
#define VMAP_WARN_ON_ONCE(diag, cond, msg) VMAP_CHECK_IMPL_(diag, cond, true, warn, msg)
// Policy-governed: the caller must handle a true result by failing cleanly.
#define VMAP_BUG_ON(diag, cond, msg) VMAP_CHECK_IMPL_(diag, cond, false, bug, msg)
// Always fatal: an internal invariant is broken and nothing can be trusted.
#define VMAP_BUG(cond, msg)                                                                        \
    do {                                                                                           \
        if (cond)                                                                                  \
            ::vmap::fatal(__FILE__, __LINE__, #cond, (msg));                                       \
    } while (0)
