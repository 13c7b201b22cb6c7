// SPDX-License-Identifier: MIT
// harness/runner.hpp: runs an operation sequence on an allocator and on the
// reference model side by side, and checks after every operation what can
// be checked cheaply:
//   map        the address is page aligned, inside the range, overlaps no
//              live mapping; a small one lies in the block find_block()
//              names; no page of it is one the model unmapped and no flush
//              covered since; a failure is no_space only when nothing could
//              fit, and only after the purge of every CPU left no block it
//              would have freed (check_exhausted());
//   unmap      the address still resolves to the block that served it;
//              the TLB log shows the translations removed (the range
//              itself waits on a lazy list until a lazy purge);
//   vread      every byte equals the model's (pages or zeros);
//   drain,     the drain work (if scheduled) and the pools' shrinker: what
//   shrink     every op checks;
//   aliases    afterwards no page unmapped before it is unflushed; with no
//              unmap since the previous call it flushes nothing; it never
//              purges a block with free >= VMAP_PURGE_THRESHOLD;
//   bad unmap  the documented errc, the documented WARN or BUG count, and
//              every live mapping still in place;
//   every op   the ops whose opcode has bit 4 set run the ready RCU
//              callbacks afterwards (rcu::poll(); with the poll batch of 1
//              that the runner sets, the rest run at call() time already);
//              no WARN or BUG the model did not predict; the TLB log,
//              replayed by the TLB model (tlb.hpp): nothing is handed out
//              while a page of it is stale, judged at each event's stamp,
//              so also inside one operation (a purge on exhaustion, say);
//              every `check_every` ops and at the end, allocator::check().
// At the end everything is unmapped and purged: the range must be whole
// again and no block may be left (nothing lost).
// A mismatch calls the failure handler with a message naming the operation
// index; the default handler prints it and aborts, so libFuzzer keeps the
// input. Properties install a handler that throws instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <vmap/allocator.hpp>

#include "checks.hpp"
#include "model.hpp"
#include "ops.hpp"
#include "tlb.hpp"

namespace harness {

struct runner_options {
    unsigned check_every = 16; // full audit every N ops (0: only at the end)
    // rcu::set_poll_batch() for the process: 1 ends every grace period as
    // soon as its last reader leaves (rcu.hpp's default batches 64).
    std::size_t rcu_poll_batch = 1;
    bool verbose = false;                               // print each op as it runs (vmap-trace)
    std::function<void(const std::string&)> on_failure; // default: print + abort
};

class runner {
  public:
    runner(const vmap::config& cfg, bool error_paths, runner_options opt = {})
        : opt_(std::move(opt)), alloc_(with_handler(cfg)),
          model_(alloc_.page_size(), alloc_.max_alloc()), tlb_(alloc_.page_size()) {
        cfg_text_ = describe(cfg, error_paths);
        vmap::rcu::set_poll_batch(opt_.rcu_poll_batch);
        bind(cpu_at(0));
    }

    vmap::allocator& allocator() { return alloc_; }
    harness::model& model() { return model_; }
    const harness::tlb_model& tlb() const { return tlb_; }

    // For callers that also use allocator() directly, outside step(), with
    // calls that WARN or BUG (under bug_policy::report) as documented: adds
    // them to the expected counts, so the next check of the diagnostics
    // agrees. The callers check those calls' outcomes themselves.
    void expect_diagnostics(unsigned long warns, unsigned long bugs) {
        expect_warn_ += warns;
        expect_bug_ += bugs;
    }

    void run(const std::vector<op>& ops) {
        for (const op& o : ops)
            step(o);
        finish();
    }

    void step(const op& o) {
        current_ = &o;
        if (opt_.verbose)
            std::printf("#%zu %s\n", index_, to_string(o).c_str());
        switch (o.kind) {
        case op_kind::map:
            do_map(o);
            break;
        case op_kind::unmap:
            do_unmap(o);
            break;
        case op_kind::vread:
            do_vread(o);
            break;
        case op_kind::unmap_aliases:
            do_unmap_aliases();
            break;
        case op_kind::purge:
            alloc_.purge_fragmented_blocks(cpu_at(o.cpu));
            break;
        case op_kind::switch_cpu:
            bind(cpu_at(o.cpu));
            break;
        case op_kind::bad_unmap:
            do_bad_unmap(o);
            break;
        case op_kind::check:
            audit();
            break;
        case op_kind::purge_all:
            alloc_.purge_fragmented_blocks_allcpus();
            break;
        case op_kind::drain:
            alloc_.run_drain_work();
            break;
        case op_kind::shrink:
            alloc_.vmap_node_shrink_scan();
            break;
        }
        if (o.rcu_poll)
            vmap::rcu::poll();
        drain_tlb(false);
        check_diagnostics();
        ++index_;
        if (opt_.check_every && index_ % opt_.check_every == 0)
            audit();
        current_ = nullptr;
    }

    // Final audit, then unmap everything and purge: nothing may be left.
    void finish() {
        audit();
        while (model_.live_count())
            unmap_handle(0);
        do_unmap_aliases();
        drain_tlb(false);
        check_diagnostics();
        // check_drained() calls vm_unmap_aliases() once more, with no unmap
        // since ours: it must flush nothing new.
        if (std::string e = check_drained(alloc_); !e.empty())
            fail(e);
        drain_tlb(true);
        if (aliases_flushed_)
            fail("vm_unmap_aliases flushed a range again with no unmap since the previous call");
    }

    // The allocator's state in a few lines, for failure reports.
    std::string state() {
        vmap::allocator_stats st = alloc_.stats();
        std::string s = "  config: " + cfg_text_ + "\n";
        s += "  live mappings " + std::to_string(model_.live_count()) + ", blocks live " +
             std::to_string(st.blocks_live) + " created " + std::to_string(st.blocks_created) +
             " freed " + std::to_string(st.blocks_freed) + " purged " +
             std::to_string(st.blocks_purged) + ", unflushed pages " +
             std::to_string(model_.unflushed().size()) + ", stale pages (TLB model) " +
             std::to_string(tlb_.stale_count()) + "\n" + tlb_.describe();
        s += "  xarrays: nodes " + std::to_string(st.xa_nodes) + " max height " +
             std::to_string(st.xa_max_height) + "; blocks per queue:";
        for (const vmap::queue_stats& q : st.queues)
            s += " " + std::to_string(q.cpu) + ":" + std::to_string(q.blocks);
        return s + "\n";
    }

  private:
    vmap::config with_handler(vmap::config cfg) {
        // WARNs are counted and compared with the model after every op; one
        // the model did not predict is a finding (check_diagnostics).
        cfg.on_warn = vmap::warn_policy::handler;
        cfg.warn_handler = [this](const vmap::check_site& site, const std::string& msg) {
            last_warn_ = std::string(site.file) + ":" + std::to_string(site.line) + ": " + msg;
        };
        return cfg;
    }

    [[noreturn]] void fail_impl(const std::string& what) {
        std::string msg = "vmap harness: op #" + std::to_string(index_) + " (" +
                          (current_ ? to_string(*current_) : std::string("final checks")) +
                          "): " + what + "\n" + state();
        if (opt_.on_failure)
            opt_.on_failure(msg);
        std::fprintf(stderr, "%s", msg.c_str());
        std::fflush(stderr);
        std::abort();
    }
    void fail(const std::string& what) { fail_impl(what); }

    unsigned cpu_at(unsigned i) const {
        const auto& cpus = alloc_.cpus().possible_cpus();
        return cpus[i % cpus.size()];
    }

    void bind(unsigned cpu) {
        binding_.reset();
        binding_ = std::make_unique<vmap::cpu_binding>(cpu);
        cpu_ = cpu;
    }

    void do_map(const op& o) {
        if (o.count == 0) {
            expect_warn_ += 1; // vb_alloc: WARN_ON_ONCE(!size)
            vmap::map_result r = alloc_.vm_map_ram({});
            if (r.err != vmap::errc::invalid_count || r.addr != 0)
                fail("vm_map_ram of 0 pages must fail cleanly with invalid_count, got " +
                     std::string(vmap::to_string(r.err)) + " at " + hex(r.addr));
            return;
        }
        std::unique_ptr<mapping> m = model_.prepare(o.count, o.fill);
        planned_fault plan(o.fault);
        vmap::map_result r = alloc_.vm_map_ram(m->pages);
        if (plan.fired() || r.err == vmap::errc::no_memory) {
            // The kernel's -ENOMEM: vm_map_ram() returns NULL, and what it
            // took (a block's pages, an area) is given back.
            if (!plan.fired() || r.err != vmap::errc::no_memory || r.addr != 0)
                fail(std::string("vm_map_ram ") +
                     (plan.fired() ? "hit its planned fault at " +
                                         std::string(vmap::to_string(*o.fault)) + " but returned "
                                   : "returned ") +
                     vmap::to_string(r.err) + " at " + hex(r.addr));
            // The rollback of a failed vmap_pages_range() is an unmap; a
            // small one leaves a dirty range the next vm_unmap_aliases()
            // flushes (a large one's lazy area is flushed as a lazy purge).
            if (*o.fault == vmap::fault_site::vmap_pages_range && model_.is_small(o.count))
                ++frees_since_aliases_;
            return;
        }
        if (!r) {
            if (r.err != vmap::errc::no_space)
                fail(std::string("vm_map_ram failed with ") + vmap::to_string(r.err));
            check_no_space(o.count);
            return;
        }
        vmap::vmap_block* vb = nullptr;
        if (std::string e = check_new_mapping(alloc_, model_, r.addr, o.count, vb); !e.empty())
            fail(e);
        // The stamped check runs in drain_tlb(); this one trusts only the
        // model: no page it unmapped may come back before a flush covers it.
        drain_tlb(false);
        if (std::string e = check_not_unflushed(model_, r.addr, o.count); !e.empty())
            fail(e);
        m->addr = r.addr;
        m->cpu = cpu_;
        m->block = vb;
        model_.commit(std::move(m));
    }

    // no_space is right only when nothing could have served the request.
    void check_no_space(unsigned count) {
        // (More pages than the range holds fail before any purge.)
        if (static_cast<unsigned long>(count) * alloc_.page_size() <= alloc_.cfg().vmalloc_size)
            if (std::string e = check_exhausted(alloc_); !e.empty())
                fail(e);
        if (!model_.is_small(count)) {
            if (alloc_.areas().can_fit(count * alloc_.page_size(), alloc_.page_size()))
                fail("no_space for " + std::to_string(count) + " pages while the range fits them");
            return;
        }
        if (alloc_.areas().can_fit(alloc_.block_size(), alloc_.block_size()))
            fail("no_space for a small mapping while a block fits in the range");
        unsigned need = 1u << vmap::get_order(count * alloc_.page_size(), alloc_.page_shift());
        vmap::rcu::read_guard rcu;
        vmap::vmap_block_queue& q = alloc_.queue(cpu_);
        vmap::list_for_each_rcu(q.free, [&](vmap::rcu_list_node* n) {
            vmap::vmap_block* vb = vmap::vmap_block::from_list(n);
            if (vb->free.load(std::memory_order_relaxed) >= need)
                fail("no_space while block " + hex(vb->va->va_start) + " on this CPU's list has " +
                     std::to_string(vb->free.load()) + " free pages");
            return true;
        });
    }

    void unmap_handle(unsigned handle) {
        mapping& m = model_.at(handle);
        unsigned long addr = m.addr;
        unsigned count = m.count;
        if (std::string e = check_resolves(alloc_, model_, m); !e.empty())
            fail(e);
        vmap::errc e = alloc_.vm_unmap_ram(addr, count);
        if (e != vmap::errc::ok)
            fail("vm_unmap_ram(" + hex(addr) + ", " + std::to_string(count) + ") failed with " +
                 vmap::to_string(e));
        if (model_.is_small(count))
            ++frees_since_aliases_;
        std::unique_ptr<mapping> gone = model_.remove(handle);
        drain_tlb(false, addr, addr + count * alloc_.page_size());
    }

    void do_unmap(const op& o) {
        if (model_.live_count())
            unmap_handle(o.handle);
    }

    void do_vread(const op& o) {
        if (!model_.live_count())
            return;
        const mapping& m = model_.at(o.handle);
        long span = static_cast<long>(m.count) + 2;
        long page_delta = o.delta % span;
        unsigned long page = alloc_.page_size();
        unsigned long addr = m.addr +
                             static_cast<unsigned long>(page_delta * static_cast<long>(page)) +
                             o.off % page;
        if (std::string e = check_vread(alloc_, model_, addr, o.len); !e.empty())
            fail(e);
    }

    void do_unmap_aliases() {
        // Blocks a non-forced purge must leave alone (77e50af07f14).
        struct usable {
            vmap::vmap_block* vb;
            unsigned long start;
            unsigned free;
        };
        std::vector<usable> keep;
        alloc_.for_each_block([&](vmap::vmap_block* vb) {
            unsigned free = vb->free.load(std::memory_order_relaxed);
            if (free >= alloc_.purge_threshold())
                keep.push_back({vb, vb->va->va_start, free});
        });
        bool frees_before = frees_since_aliases_ != 0;
        alloc_.vm_unmap_aliases();
        drain_tlb(true);
        if (!model_.unflushed().empty())
            fail(std::to_string(model_.unflushed().size()) +
                 " pages unmapped before vm_unmap_aliases are still unflushed after it, first " +
                 hex(*model_.unflushed().begin()));
        if (!frees_before && aliases_flushed_)
            fail("vm_unmap_aliases flushed a range again with no unmap since the previous call");
        for (const usable& u : keep)
            if (alloc_.find_block(u.start) != u.vb)
                fail("vm_unmap_aliases purged block " + hex(u.start) + " with " +
                     std::to_string(u.free) + " free pages >= VMAP_PURGE_THRESHOLD " +
                     std::to_string(alloc_.purge_threshold()));
        frees_since_aliases_ = 0;
    }

    // Replays the TLB log into the TLB model (which judges every hand-out)
    // and applies its flushes to the model. A vm_unmap_aliases range is only
    // legal inside that call. `unmapped_start..unmapped_end`, if given, was
    // just unmapped: an unmap event must cover it.
    void drain_tlb(bool in_aliases, unsigned long unmapped_start = 0,
                   unsigned long unmapped_end = 0) {
        aliases_flushed_ = false;
        bool unmap_seen = unmapped_end == 0;
        alloc_.tlb().take(events_);
        for (const vmap::tlb_event& e : events_) {
            if (std::string v = tlb_.apply(e); !v.empty())
                fail(v + "\n  stale pages:\n" + tlb_.describe());
            if (e.kind == vmap::tlb_event_kind::unmap && e.start <= unmapped_start &&
                unmapped_end <= e.end)
                unmap_seen = true;
            if (e.kind != vmap::tlb_event_kind::flush)
                continue;
            if (e.reason == vmap::flush_reason::unmap_aliases) {
                if (!in_aliases)
                    fail("a vm_unmap_aliases flush outside vm_unmap_aliases");
                aliases_flushed_ = true;
            }
            model_.flushed(e.start, e.end);
        }
        if (!unmap_seen)
            fail("the TLB log shows no unmap of " + hex(unmapped_start) + "-" + hex(unmapped_end) +
                 ", which vm_unmap_ram just unmapped");
    }

    struct bad_call {
        unsigned long addr;
        unsigned count;
        vmap::errc want;
        bool bug; // BUG_ON (else WARN)
    };

    // The documented outcome of vm_unmap_ram(addr, count), predicted from
    // the model alone. ok means the call is a valid unmap after all.
    bad_call predict(unsigned long addr, unsigned count) const {
        unsigned long page = alloc_.page_size();
        if (addr == 0 || addr < alloc_.vmalloc_start() || addr >= alloc_.vmalloc_end() ||
            addr % page)
            return {addr, count, vmap::errc::bad_address, true};
        if (count == 0)
            return {addr, count, vmap::errc::invalid_count, false};
        const mapping* m = model_.starting_at(addr);
        bool small = model_.is_small(count);
        if (!m || model_.is_small(m->count) != small)
            return {addr, count, vmap::errc::not_mapped, small};
        bool same = small ? vmap::get_order(count * page, alloc_.page_shift()) ==
                                vmap::get_order(m->count * page, alloc_.page_shift())
                          : count == m->count;
        return {addr, count, same ? vmap::errc::ok : vmap::errc::wrong_count, small};
    }

    void do_bad_unmap(const op& o) {
        unsigned long page = alloc_.page_size();
        const mapping* m = model_.live_count() ? &model_.at(o.handle) : nullptr;
        unsigned long addr = 0;
        unsigned count = 1;
        switch (o.bad) {
        case bad_kind::null_addr:
            addr = 0;
            break;
        case bad_kind::below_range:
            addr = alloc_.vmalloc_start() - page;
            break;
        case bad_kind::above_range:
            addr = alloc_.vmalloc_end() + page * (o.arg % 4);
            break;
        case bad_kind::unaligned:
            addr = (m ? m->addr : alloc_.vmalloc_start()) + 1 + o.arg % (page - 1);
            count = m ? m->count : 1;
            break;
        case bad_kind::zero_count:
            addr = m ? m->addr : alloc_.vmalloc_start();
            count = 0;
            break;
        case bad_kind::wrong_count:
            addr = m ? m->addr : alloc_.vmalloc_start();
            count = m ? (m->count + 1 + o.arg % 200) % 160 : o.arg;
            break;
        case bad_kind::interior:
            addr = (m ? m->addr : alloc_.vmalloc_start()) + page * (1 + o.arg % 4);
            count = m ? m->count : 1;
            break;
        case bad_kind::unknown: {
            unsigned long pages = (alloc_.vmalloc_end() - alloc_.vmalloc_start()) / page;
            addr = alloc_.vmalloc_start() + page * ((o.arg * 2654435761UL) % pages);
            count = 1 + o.arg % 100;
            break;
        }
        case bad_kind::double_unmap:
            if (model_.freed().empty())
                return;
            addr = model_.freed()[o.arg % model_.freed().size()];
            count = 1 + o.arg % 8;
            break;
        case bad_kind::count_:
            return;
        }
        bad_call c = predict(addr, count);
        if (c.want == vmap::errc::ok) {
            // Names a live mapping exactly: it is an unmap after all.
            for (std::size_t h = 0; h < model_.live().size(); ++h)
                if (model_.live()[h]->addr == addr) {
                    unmap_handle(static_cast<unsigned>(h));
                    return;
                }
        }
        (c.bug ? expect_bug_ : expect_warn_) += 1;
        vmap::errc e = alloc_.vm_unmap_ram(addr, count);
        if (e != c.want)
            fail("vm_unmap_ram(" + hex(addr) + ", " + std::to_string(count) + ") returned " +
                 vmap::to_string(e) + ", documented answer is " + vmap::to_string(c.want));
        check_live_intact();
    }

    // After a refused call, every live mapping must still be in place.
    void check_live_intact() {
        for (const auto& m : model_.live()) {
            std::byte* p = alloc_.translate(m->addr);
            if (p != m->pages[0])
                fail("live mapping at " + hex(m->addr) + " was disturbed by a refused unmap");
        }
    }

    void check_diagnostics() {
        vmap::diagnostics& d = alloc_.diag();
        if (d.warn_hits() != expect_warn_)
            fail("WARN count " + std::to_string(d.warn_hits()) + ", expected " +
                 std::to_string(expect_warn_) + "; last: " + last_warn_);
        if (d.bug_count() != expect_bug_)
            fail("BUG count " + std::to_string(d.bug_count()) + ", expected " +
                 std::to_string(expect_bug_));
    }

    void audit() {
        if (std::string e = check_audit(alloc_); !e.empty())
            fail(e);
        if (std::string e = check_xa_height(alloc_); !e.empty())
            fail(e);
    }

    runner_options opt_;
    std::string last_warn_;
    vmap::allocator alloc_;
    harness::model model_;
    harness::tlb_model tlb_;
    std::vector<vmap::tlb_event> events_; // drain_tlb()'s buffer, reused
    std::string cfg_text_;
    std::unique_ptr<vmap::cpu_binding> binding_;
    unsigned cpu_ = 0;
    std::size_t index_ = 0;
    const op* current_ = nullptr;
    unsigned long expect_warn_ = 0, expect_bug_ = 0;
    unsigned long frees_since_aliases_ = 0;
    bool aliases_flushed_ = false;
};

} // namespace harness
