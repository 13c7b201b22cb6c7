// SPDX-License-Identifier: MIT
// properties/warn_bounds.cpp - property 3: the WARN_ON_ONCE bounds of
// vmap_block_vaddr(va_start, pages_off) hold, in both directions.
//
//   never warns: for every reachable (va_start, pages_off) - the va_start of
//     a live block and the offset the next allocation in it would use
//     (BITS - free), after every op of a random sequence; and at the end,
//     every in-block offset 0 .. BITS-1 of every live block. The address
//     returned is va_start + pages_off pages.
//   does warn: for offsets outside the block, above it (BITS and more) and
//     below it (pages_off wrapping to a negative page count), on the
//     va_start of live blocks and of any block of the range - once per site
//     (the handler runs once, every further hit is counted but silent), and
//     never for the in-block calls mixed in between.
#include "common.hpp"

#include <climits>

namespace {

// Calls vmap_block_vaddr(va_start, off) on `a`, which must not warn.
void expect_no_warning(vmap::allocator& a, unsigned long va_start, unsigned long off) {
    unsigned long hits = a.diag().warn_hits();
    unsigned long addr = a.vmap_block_vaddr(va_start, off);
    if (a.diag().warn_hits() != hits)
        RC_FAIL("vmap_block_vaddr(" + props::hex(va_start) + ", " + std::to_string(off) +
                ") warned for an in-block offset (BITS " + std::to_string(a.bbmap_bits()) + ")");
    RC_ASSERT(addr == va_start + (off << a.page_shift()));
}

// The va_start of every live block, and BITS - free for those with free pages.
struct reachable {
    unsigned long va_start;
    unsigned free;
};

std::vector<reachable> reachable_now(vmap::allocator& a) {
    std::vector<reachable> v;
    for (vmap::vmap_block* vb : props::live_blocks(a))
        v.push_back({vb->va->va_start, vb->free.load(std::memory_order_relaxed)});
    return v;
}

// An out-of-block offset: above the block or (wrapping) below it. At most
// 2^40 pages away, so that va_start + (pages_off << page_shift) cannot wrap
// round 2^64 back into the block.
struct out_offset {
    bool below = false;
    unsigned long pages = 0; // above: BITS + pages; below: -(pages + 1)
};

void showValue(const out_offset& o, std::ostream& os) {
    os << (o.below ? "below by " : "above by ") << o.pages << " page(s)";
}

unsigned long offset_of(const out_offset& o, unsigned bits) {
    return o.below ? ~o.pages : bits + o.pages; // ~p == -(p + 1)
}

rc::Gen<out_offset> gen_out_offset() {
    return rc::gen::build<out_offset>(
        rc::gen::set(&out_offset::below),
        rc::gen::set(&out_offset::pages, rc::gen::weightedOneOf<unsigned long>(
                                             {{4, rc::gen::inRange(0UL, 4UL)},
                                              {4, rc::gen::inRange(0UL, 1UL << 20)},
                                              {1, rc::gen::inRange(0UL, 1UL << 40)}})));
}

} // namespace

RC_GTEST_PROP(warn_bounds, reachable_offsets_never_warn, ()) {
    props::config_draw c = *props::gen_config({});
    props::op_options opt;
    opt.error_paths = c.error_paths;
    std::vector<harness::op> ops = *props::gen_ops(opt);
    harness::runner r(c.cfg, c.error_paths, props::throwing_options());
    vmap::allocator& a = r.allocator();
    for (const harness::op& o : ops) {
        r.step(o);
        for (const reachable& b : reachable_now(a)) {
            expect_no_warning(a, b.va_start, 0); // new_vmap_block's call
            if (b.free > 0)                      // vb_alloc's next call
                expect_no_warning(a, b.va_start, a.bbmap_bits() - b.free);
        }
    }
    for (const reachable& b : reachable_now(a))
        for (unsigned off = 0; off < a.bbmap_bits(); ++off)
            expect_no_warning(a, b.va_start, off);
    r.finish(); // also: the runner saw no WARN it did not predict
}

RC_GTEST_PROP(warn_bounds, out_of_block_offsets_warn_once_per_site, ()) {
    props::config_draw c = *props::gen_config({});
    // Reachable block starts from a random run, plus any block of the range.
    std::vector<unsigned long> starts;
    {
        props::op_options opt;
        opt.error_paths = c.error_paths;
        std::vector<harness::op> ops = *props::gen_ops(opt);
        harness::runner r(c.cfg, c.error_paths, props::throwing_options());
        for (const harness::op& o : ops)
            r.step(o);
        for (const reachable& b : reachable_now(r.allocator()))
            starts.push_back(b.va_start);
        r.finish();
    }

    // A fresh allocator of the same configuration whose WARN handler counts.
    unsigned handled = 0;
    std::string first_message;
    vmap::config cfg = c.cfg;
    cfg.on_warn = vmap::warn_policy::handler;
    cfg.warn_handler = [&](const vmap::check_site&, const std::string& msg) {
        if (handled++ == 0)
            first_message = msg;
    };
    vmap::allocator a(cfg);
    unsigned long first_block = (a.vmalloc_start() + a.block_size() - 1) & ~(a.block_size() - 1);
    unsigned long blocks = (a.vmalloc_end() - first_block) / a.block_size();
    if (blocks > 0)
        starts.push_back(first_block +
                         *rc::gen::inRange(0UL, blocks) * a.block_size()); // any block
    RC_PRE(!starts.empty());

    // Out-of-block calls, each followed by an in-block one.
    const auto calls =
        *rc::gen::nonEmpty(rc::gen::container<std::vector<std::pair<out_offset, unsigned>>>(
            rc::gen::pair(gen_out_offset(), rc::gen::arbitrary<unsigned>())));
    unsigned long bits = a.bbmap_bits(), shift = a.page_shift();
    unsigned long out_calls = 0;
    std::string first_offset;
    for (std::size_t i = 0; i < calls.size(); ++i) {
        unsigned long va_start = starts[calls[i].second % starts.size()];
        unsigned long off = offset_of(calls[i].first, a.bbmap_bits());
        unsigned long hits = a.diag().warn_hits();
        unsigned long addr = a.vmap_block_vaddr(va_start, off);
        ++out_calls;
        if (first_offset.empty())
            first_offset = " page " + std::to_string(off) + " ";
        RC_ASSERT(addr == va_start + (off << shift)); // computed anyway, as the kernel's
        if (a.diag().warn_hits() != hits + 1)
            RC_FAIL("vmap_block_vaddr(" + props::hex(va_start) + ", " + std::to_string(off) +
                    ") did not warn: the address is outside the block (BITS " +
                    std::to_string(bits) + ")");
        expect_no_warning(a, va_start, calls[i].second % bits);
    }
    // Once per site: the handler ran once, for the first call; every hit counted.
    RC_ASSERT(handled == 1u);
    RC_ASSERT(first_message.find(first_offset) != std::string::npos);
    RC_ASSERT(a.diag().warn_hits() == out_calls);
    std::vector<vmap::site_record> sites = a.diag().records();
    RC_ASSERT(sites.size() == 1u);
    RC_ASSERT(sites[0].site->once);
    RC_ASSERT(sites[0].hits == out_calls);
    RC_ASSERT(sites[0].fired == 1u);
}
