// SPDX-License-Identifier: MIT
// properties/bad_input.cpp - property 8: each documented misuse gives its
// documented outcome and leaves everything else intact.
//
// The table is in lib/vmap/allocator.hpp; BUG_ONs run under
// bug_policy::report so that they return an error instead of dying.
//   - vm_unmap_ram misuse (the op vocabulary's bad_unmap: address 0, below
//     or above the range, unaligned, count 0, wrong count, interior
//     address, nothing mapped there, double unmap), mixed into random
//     sequences: the runner predicts the documented errc and WARN/BUG from
//     the model and checks them; asserted directly here: a refused call
//     changes nothing at all (every block's counters, bitmap, dirty range
//     and CPU, the VA allocator, the flush count), and every page of every
//     live mapping still maps the page it mapped.
//   - vm_map_ram misuse, called directly in a reachable state: no pages
//     (invalid_count, WARN_ON_ONCE), a null page anywhere in a small or
//     large request (invalid_page, WARN_ON_ONCE), more pages than the whole
//     range (no_space): the documented errc, address 0, one more WARN hit
//     where documented, nothing changed, all mappings intact - and the run
//     goes on and ends clean (the runner's final checks).
#include "common.hpp"

#include <memory>
#include <vector>

namespace {

// Everything a refused call must leave as it was.
struct snapshot {
    struct block {
        unsigned long va_start;
        unsigned free, dirty, dirty_min, dirty_max, cpu;
        std::vector<std::pair<unsigned, unsigned>> used; // set runs of used_map
        bool operator==(const block&) const = default;
    };
    std::vector<block> blocks;
    unsigned long free_bytes = 0;
    std::size_t busy = 0;
    std::uint64_t flushes = 0, created = 0, freed = 0, purged = 0;
    bool operator==(const snapshot&) const = default;
};

snapshot take(vmap::allocator& a) {
    snapshot s;
    for (vmap::vmap_block* vb : props::live_blocks(a)) {
        std::lock_guard<vmap::spinlock> g(vb->lock);
        snapshot::block b{vb->va->va_start,
                          vb->free.load(std::memory_order_relaxed),
                          vb->dirty.load(std::memory_order_relaxed),
                          vb->dirty_min,
                          vb->dirty_max,
                          vb->cpu,
                          {}};
        vb->used_map.for_each_set_range(
            [&](unsigned rs, unsigned re) { b.used.emplace_back(rs, re); });
        s.blocks.push_back(std::move(b));
    }
    s.free_bytes = a.areas().free_bytes();
    s.busy = a.areas().busy_count();
    vmap::allocator_stats st = a.stats();
    s.flushes = st.flushes;
    s.created = st.blocks_created;
    s.freed = st.blocks_freed;
    s.purged = st.blocks_purged;
    return s;
}

void check_intact(harness::runner& r, const std::string& after) {
    vmap::allocator& a = r.allocator();
    for (const auto& m : r.model().live())
        for (unsigned p = 0; p < m->count; ++p)
            if (a.translate(m->addr + p * a.page_size()) != m->pages[p])
                RC_FAIL("page " + std::to_string(p) + " of the live mapping at " +
                        props::hex(m->addr) + " no longer maps its page after " + after);
}

// vm_map_ram misuses that the op vocabulary cannot express.
enum class map_misuse { no_pages, null_page, beyond_range };

struct misuse {
    map_misuse kind = map_misuse::no_pages;
    unsigned count = 1; // null_page: pages requested
    unsigned at = 0;    // null_page: which one is null (% count)
};

void showValue(const misuse& m, std::ostream& os) {
    switch (m.kind) {
    case map_misuse::no_pages:
        os << "vm_map_ram(no pages)";
        break;
    case map_misuse::null_page:
        os << "vm_map_ram(" << m.count << " pages, page " << m.at % m.count << " null)";
        break;
    case map_misuse::beyond_range:
        os << "vm_map_ram(more pages than the range)";
        break;
    }
}

rc::Gen<misuse> gen_misuse() {
    return rc::gen::build<misuse>(
        rc::gen::set(&misuse::kind, rc::gen::element(map_misuse::no_pages, map_misuse::null_page,
                                                     map_misuse::beyond_range)),
        rc::gen::set(&misuse::count, rc::gen::inRange(1u, 147u)),
        rc::gen::set(&misuse::at, rc::gen::arbitrary<unsigned>()));
}

// Returns the WARN hits the call is documented to add. Every non-null page
// pointer is `page` (one page that outlives the allocator): a refused call
// must not look at them, and one that wrongly succeeds maps real memory.
unsigned long apply(harness::runner& r, const misuse& m, std::byte* page) {
    vmap::allocator& a = r.allocator();
    std::string what = rc::toString(m);
    vmap::errc want = vmap::errc::invalid_count;
    unsigned long warns = 1;
    std::vector<std::byte*> list;
    switch (m.kind) {
    case map_misuse::no_pages:
        break;
    case map_misuse::null_page:
        list.assign(m.count, page);
        list[m.at % m.count] = nullptr;
        want = vmap::errc::invalid_page;
        break;
    case map_misuse::beyond_range: {
        unsigned long range_pages = (a.vmalloc_end() - a.vmalloc_start()) >> a.page_shift();
        if (range_pages + 1 > (1UL << 16))
            return 0; // small ranges only: one pointer per page of the request
        list.assign(range_pages + 1, page);
        want = vmap::errc::no_space;
        warns = 0;
        break;
    }
    }
    snapshot before = take(a);
    unsigned long hits = a.diag().warn_hits(), bugs = a.diag().bug_count();
    vmap::map_result res = a.vm_map_ram(list);
    if (res.err != want || res.addr != 0)
        RC_FAIL(what + " returned " + vmap::to_string(res.err) + " at " + props::hex(res.addr) +
                ", documented: " + vmap::to_string(want) + " at 0");
    RC_ASSERT(a.diag().warn_hits() == hits + warns);
    RC_ASSERT(a.diag().bug_count() == bugs);
    if (!(take(a) == before))
        RC_FAIL(what + " was refused but changed the allocator's state");
    check_intact(r, what);
    return warns;
}

void run(const props::config_draw& c, const std::vector<harness::op>& ops,
         const std::vector<misuse>& misuses) {
    std::vector<std::byte> page(1UL << c.cfg.page_shift, std::byte{0x5a});
    harness::runner r(c.cfg, c.error_paths, props::throwing_options());
    auto step = [&](const harness::op& o) {
        if (o.kind != harness::op_kind::bad_unmap) {
            r.step(o);
            return;
        }
        std::size_t live = r.model().live_count();
        snapshot before = take(r.allocator());
        r.step(o); // the runner checks the documented errc and WARN/BUG
        if (r.model().live_count() == live && !(take(r.allocator()) == before))
            RC_FAIL(harness::to_string(o) + " was refused but changed the allocator's state");
        check_intact(r, harness::to_string(o));
    };
    std::size_t half = ops.size() / 2;
    for (std::size_t i = 0; i < half; ++i)
        step(ops[i]);
    unsigned long warns = 0;
    for (const misuse& m : misuses)
        warns += apply(r, m, page.data());
    r.expect_diagnostics(warns, 0);
    for (std::size_t i = half; i < ops.size(); ++i)
        step(ops[i]);
    r.finish();
}

} // namespace

RC_GTEST_PROP(bad_input, each_misuse_gets_its_documented_answer_and_changes_nothing, ()) {
    props::config_options copt;
    copt.errors = props::error_paths::always;
    props::config_draw c = *props::gen_config(copt);
    props::op_options opt;
    opt.error_paths = true;
    opt.bad_weight = 40;
    const auto ops = *props::gen_ops(opt);
    const auto misuses = *rc::gen::container<std::vector<misuse>>(gen_misuse());
    run(c, ops, misuses);
}

RC_GTEST_PROP(bad_input, misuse_in_small_exhausted_ranges, ()) {
    props::config_options copt;
    copt.errors = props::error_paths::always;
    copt.exhaust = true;
    props::config_draw c = *props::gen_config(copt);
    props::op_options opt;
    opt.error_paths = true;
    opt.bad_weight = 30;
    opt.map_weight = 60;
    const auto ops = *props::gen_ops(opt);
    const auto misuses = *rc::gen::container<std::vector<misuse>>(gen_misuse());
    run(c, ops, misuses);
}
