// SPDX-License-Identifier: MIT
// properties/stateful.cpp - property 1: the stateful model test.
//
// Random command sequences (map, unmap, vread, vm_unmap_aliases, purge,
// purge_all, switch CPU, check, and with error paths the documented
// misuses) over random configurations, checked against the reference model
// by harness::runner after every command, and shrunk by RapidCheck to a
// minimal failing sequence on failure.
//
// The design is deliberately thin: the command payload is a harness::op, the
// system under test is a harness::runner, which holds both the allocator and
// the model (fuzz/harness/runner.hpp lists what it checks after each op).
// RapidCheck's own "model" is only the generation context: the ops stay
// meaningful after any shrink (handles are taken modulo the live mappings),
// so no command has preconditions.
#include "common.hpp"

#include <rapidcheck/state.h>

#include <memory>

namespace {

struct gen_context {
    props::op_options ops;
};

using command = rc::state::Command<gen_context, harness::runner>;

struct op_command : command {
    harness::op op;
    explicit op_command(const harness::op& o) : op(o) {}
    void run(const gen_context&, harness::runner& r) const override { r.step(op); }
    void show(std::ostream& os) const override { os << harness::to_string(op); }
};

void run_stateful(const props::config_draw& c, props::op_options opt = {}) {
    // check_every 1: allocator::check() after every command, so a shrunk
    // sequence ends at the command that broke an invariant.
    harness::runner r(c.cfg, c.error_paths, props::throwing_options(1));
    opt.error_paths = c.error_paths;
    rc::state::check(gen_context{opt}, r, [](const gen_context& ctx) {
        return rc::gen::map(props::gen_op(ctx.ops), [](const harness::op& o) {
            return std::shared_ptr<const command>(std::make_shared<const op_command>(o));
        });
    });
    // Final audit, unmap everything, purge: the range must be whole again.
    r.finish();
}

} // namespace

// Any configuration the fuzzers' header can name.
RC_GTEST_PROP(stateful, random_configurations_agree_with_the_model, ()) {
    run_stateful(*props::gen_config({}));
}

// Ranges of 2..7 blocks of 128 pages and mostly maps, so that runs exhaust
// them: no_space, purging of every CPU before retrying, reuse of freed VA.
RC_GTEST_PROP(stateful, small_ranges_that_exhaust_agree_with_the_model, ()) {
    props::config_options opt;
    opt.exhaust = true;
    opt.errors = props::error_paths::never;
    props::op_options ops;
    ops.map_weight = 72; // three maps for every unmap
    run_stateful(*props::gen_config(opt), ops);
}

// Every documented misuse mixed into the sequences (bug_policy::report).
RC_GTEST_PROP(stateful, misuse_mixed_in_agrees_with_the_model, ()) {
    props::config_options opt;
    opt.errors = props::error_paths::always;
    run_stateful(*props::gen_config(opt));
}
