// SPDX-License-Identifier: MIT
// harness/tlb.hpp: the TLB model - which pages may still have a stale
// translation, and the check of vmalloc's promise against it.
//
// It replays the allocator's TLB log (vmap/tlb_log.hpp) in stamp order:
//   unmap     the pages of [start, end) become stale, remembering the event;
//   flush     every stale page in [start, end) is clean again;
//   hand_out  no page of [start, end) may be stale: a page handed out at
//             stamp t whose last unmap was at stamp u needs a covering flush
//             with a stamp in (u, t); since events come in stamp order, that
//             is "not in the stale set now";
//   release   remembered, to say in a report when the range became
//             allocatable (the promise is judged at hand-out).
// Stamps are taken under the lock that publishes each event, so the replay
// is exact across threads: one pass over the merged log after the threads
// join judges every hand-out of every thread at its own moment.
#pragma once

#include <cstddef>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <vmap/tlb_log.hpp>
#include <vmap/vmap_area.hpp>

namespace harness {

class tlb_model {
  public:
    explicit tlb_model(unsigned long page_size) : page_(page_size) {}

    // Applies one event; returns "" or the sentence that names the broken
    // promise: the stale page, its last unmap and the hand-out that reused it.
    std::string apply(const vmap::tlb_event& e) {
        unsigned long first = first_page(e.start);
        switch (e.kind) {
        case vmap::tlb_event_kind::unmap:
            if (first < e.end) {
                unsigned long end = page_end(e.end);
                clear(first, end);
                stale_.emplace(first, run{end, e});
            }
            break;
        case vmap::tlb_event_kind::flush:
            if (first < e.end)
                clear(first, page_end(e.end));
            break;
        case vmap::tlb_event_kind::hand_out:
            if (auto [page, by] = first_stale(e.start, e.end); by)
                return violation(e, page, *by);
            break;
        case vmap::tlb_event_kind::release:
            released_[e.start] = e;
            break;
        }
        return "";
    }

    // Applies events in order; the first violation, or "".
    std::string apply(const std::vector<vmap::tlb_event>& events) {
        for (const vmap::tlb_event& e : events)
            if (std::string v = apply(e); !v.empty())
                return v;
        return "";
    }

    bool stale(unsigned long page) const { return first_stale(page, page + 1).second != nullptr; }
    // Whether a page of [start, end) is stale now (a test's question at a
    // release; the promise itself is judged at hand-out by apply()).
    bool any_stale(unsigned long start, unsigned long end) const {
        return first_stale(start, end).second != nullptr;
    }
    // Stale pages.
    std::size_t stale_count() const {
        std::size_t n = 0;
        for (const auto& [start, r] : stale_)
            n += (r.end - start) / page_;
        return n;
    }

    // The stale set in a few lines: runs of pages, each with the unmap that
    // made it stale (at most `max` runs).
    std::string describe(std::size_t max = 8) const {
        std::string s;
        std::size_t runs = 0;
        for (auto it = stale_.begin(); it != stale_.end();) {
            unsigned long first = it->first, end = it->second.end;
            std::uint64_t stamp = it->second.by.stamp;
            auto next = std::next(it);
            while (next != stale_.end() && next->first == end && next->second.by.stamp == stamp) {
                end = next->second.end;
                ++next;
            }
            if (runs++ < max)
                s += "    " + hex(first) + "-" + hex(end) + " since " + describe(it->second.by) +
                     "\n";
            it = next;
        }
        if (runs > max)
            s += "    ... " + std::to_string(runs - max) + " more run(s)\n";
        return s;
    }

    static std::string describe(const vmap::tlb_event& e) {
        std::string s = std::string(vmap::to_string(e.kind)) + " ";
        s += e.kind == vmap::tlb_event_kind::flush ? vmap::to_string(e.reason)
                                                   : vmap::to_string(e.range);
        return s + " " + hex(e.start) + "-" + hex(e.end) + " at stamp " + std::to_string(e.stamp) +
               " (thread " + std::to_string(e.thread) + ")";
    }

  private:
    // Stale pages as runs [start, end) made stale by one unmap: one node per
    // unmap, not per page (a block's unmap made a thousand, and the replay
    // was a tenth of a vmap_threads run, issue 18).
    struct run {
        unsigned long end;
        vmap::tlb_event by;
    };

    static std::string hex(unsigned long v) { return vmap::vmap_area_allocator::hex(v); }
    unsigned long first_page(unsigned long a) const { return a & ~(page_ - 1); }
    // The end of the last page that starts below `a`.
    unsigned long page_end(unsigned long a) const { return first_page(a - 1) + page_; }

    // Splits the run that straddles `at`, if any, so that a run starts there.
    void split(unsigned long at) {
        auto it = stale_.upper_bound(at);
        if (it == stale_.begin())
            return;
        --it;
        if (it->first < at && at < it->second.end) {
            stale_.emplace_hint(std::next(it), at, run{it->second.end, it->second.by});
            it->second.end = at;
        }
    }
    // Makes the pages of [start, end) (page-aligned) clean.
    void clear(unsigned long start, unsigned long end) {
        split(start);
        split(end);
        stale_.erase(stale_.lower_bound(start), stale_.lower_bound(end));
    }

    // The first stale page of [start, end) and the unmap that staled it, or
    // {0, nullptr}.
    std::pair<unsigned long, const vmap::tlb_event*> first_stale(unsigned long start,
                                                                 unsigned long end) const {
        unsigned long first = first_page(start);
        if (first >= end)
            return {0, nullptr};
        auto it = stale_.upper_bound(first);
        if (it != stale_.begin() && std::prev(it)->second.end > first)
            return {first, &std::prev(it)->second.by};
        if (it != stale_.end() && it->first < end)
            return {it->first, &it->second.by};
        return {0, nullptr};
    }

    std::string violation(const vmap::tlb_event& out, unsigned long page,
                          const vmap::tlb_event& unmapped) const {
        std::string s = "stale TLB: " + describe(out) + " hands out page " + hex(page) +
                        ", whose translation was removed by " + describe(unmapped) +
                        " and no flush has covered it since";
        // When did that range become allocatable again?
        auto r = released_.upper_bound(page);
        if (r != released_.begin()) {
            --r;
            const vmap::tlb_event& rel = r->second;
            if (page < rel.end && rel.stamp > unmapped.stamp)
                s += "; it was returned to the free space by " + describe(rel);
        }
        return s;
    }

    unsigned long page_;
    std::map<unsigned long, run> stale_;                // run start -> its end and unmap
    std::map<unsigned long, vmap::tlb_event> released_; // range start -> its last release
};

} // namespace harness
