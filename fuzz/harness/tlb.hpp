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
        switch (e.kind) {
        case vmap::tlb_event_kind::unmap:
            for (unsigned long p = first_page(e.start); p < e.end; p += page_)
                stale_[p] = e;
            break;
        case vmap::tlb_event_kind::flush:
            stale_.erase(stale_.lower_bound(first_page(e.start)), stale_.lower_bound(e.end));
            break;
        case vmap::tlb_event_kind::hand_out:
            if (auto it = first_stale(e.start, e.end); it != stale_.end())
                return violation(e, it->first, it->second);
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

    bool stale(unsigned long page) const { return stale_.count(page) != 0; }
    // Whether a page of [start, end) is stale now (a test's question at a
    // release; the promise itself is judged at hand-out by apply()).
    bool any_stale(unsigned long start, unsigned long end) const {
        return first_stale(start, end) != stale_.end();
    }
    std::size_t stale_count() const { return stale_.size(); }

    // The stale set in a few lines: runs of pages, each with the unmap that
    // made it stale (at most `max` runs).
    std::string describe(std::size_t max = 8) const {
        std::string s;
        std::size_t runs = 0;
        for (auto it = stale_.begin(); it != stale_.end();) {
            unsigned long first = it->first, last = it->first;
            std::uint64_t stamp = it->second.stamp;
            auto next = std::next(it);
            while (next != stale_.end() && next->first == last + page_ &&
                   next->second.stamp == stamp) {
                last = next->first;
                ++next;
            }
            if (runs++ < max)
                s += "    " + hex(first) + "-" + hex(last + page_) + " since " +
                     describe(it->second) + "\n";
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
    static std::string hex(unsigned long v) { return vmap::vmap_area_allocator::hex(v); }
    unsigned long first_page(unsigned long a) const { return a & ~(page_ - 1); }
    std::map<unsigned long, vmap::tlb_event>::const_iterator first_stale(unsigned long start,
                                                                         unsigned long end) const {
        auto it = stale_.lower_bound(first_page(start));
        return it != stale_.end() && it->first < end ? it : stale_.end();
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
    std::map<unsigned long, vmap::tlb_event> stale_;    // page -> the unmap that staled it
    std::map<unsigned long, vmap::tlb_event> released_; // range start -> its last release
};

} // namespace harness
