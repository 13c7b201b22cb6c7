// SPDX-License-Identifier: MIT
// vmap/tlb_log.hpp: what a TLB would see - every translation removed, every
// flush, every range handed out or returned, in one order.
//
// There is no TLB in userspace. What matters is vmalloc's promise: a virtual
// range is never handed out again while a TLB entry of its previous mapping
// may survive. A page is stale from the event that removes its translation
// (unmap) until a flush that covers it (flush_tlb_kernel_range()); a range
// handed out (hand_out) must hold no stale page. The log lets an observer
// check that exactly, across threads, with no timing involved:
//
//   Every event carries a stamp from one counter, taken inside the critical
//   section that publishes the event (vb->lock for a small map or unmap,
//   vmap_area_lock for an area handed out, unlinked or returned to the free
//   space, vn->pool_lock for an area put in or taken from a pool). Sections
//   of one lock are ordered by happens-before, and read-modify-writes of one
//   atomic follow a single modification order consistent with it, so stamps
//   order events as the locks do. A relaxed fetch_add suffices for that,
//   and it adds no happens-before edge: ThreadSanitizer still judges the
//   allocator's own synchronisation alone.
//
//   Each task (an OS thread, or a fiber: vmap/current.hpp) appends to a
//   buffer of its own, so recording takes no lock
//   either (a shared mutex would order every recording thread after the
//   previous one and hide the allocator's races from TSan). take() merges
//   the buffers by stamp; it needs the recording threads quiescent: joined,
//   or the caller is the only one.
//
// A page handed out at stamp t whose last unmap was at stamp u is safe iff a
// flush covering it has a stamp in (u, t). Release events (a range returned
// to the free space) are recorded so that a report or a test can say when a
// range became allocatable; the promise itself is checked at hand-out.
//
// Recording can be turned off (benchmarks, stress tests): then only the
// flush counter runs; nothing is stamped (one shared atomic add per event,
// which the kernel does not pay) and nothing is kept.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <vmap/current.hpp>

namespace vmap {

enum class tlb_event_kind : std::uint8_t {
    unmap,    // translations of [start, end) removed: stale until flushed
    flush,    // flush_tlb_kernel_range(start, end)
    hand_out, // [start, end) given to a new user
    release,  // [start, end) returned to the free space: allocatable again
};

// What kind of range an unmap, hand-out or release concerns.
enum class range_kind : std::uint8_t {
    small, // pages of a block (vb_alloc / vb_free)
    block, // a whole vmap_block's area
    large, // a vm_map_ram() mapping with a vmap_area of its own
};

enum class flush_reason : std::uint8_t {
    none,          // not a flush
    unmap_aliases, // _vm_unmap_aliases()'s own: the blocks' dirty ranges, no
                   // lazy area waiting
    lazy_purge,    // __purge_vmap_area_lazy(): every lazy area's range, widened
                   // by its caller's (vm_unmap_aliases(), the drain work, the
                   // purge on exhaustion)
};

inline const char* to_string(tlb_event_kind k) {
    switch (k) {
    case tlb_event_kind::unmap:
        return "unmap";
    case tlb_event_kind::flush:
        return "flush";
    case tlb_event_kind::hand_out:
        return "hand_out";
    case tlb_event_kind::release:
        return "release";
    }
    return "?";
}

inline const char* to_string(range_kind k) {
    switch (k) {
    case range_kind::small:
        return "small";
    case range_kind::block:
        return "block";
    case range_kind::large:
        return "large";
    }
    return "?";
}

inline const char* to_string(flush_reason r) {
    switch (r) {
    case flush_reason::none:
        return "none";
    case flush_reason::unmap_aliases:
        return "unmap_aliases";
    case flush_reason::lazy_purge:
        return "lazy_purge";
    }
    return "?";
}

struct tlb_event {
    std::uint64_t stamp = 0;
    unsigned long start = 0, end = 0; // [start, end)
    tlb_event_kind kind = tlb_event_kind::flush;
    range_kind range = range_kind::small;     // unmap, hand_out, release
    flush_reason reason = flush_reason::none; // flush
    unsigned thread = 0;                      // the recording thread's tag (take())
};

class tlb_log {
  public:
    explicit tlb_log(bool record = true) : record_(record) {}
    tlb_log(const tlb_log&) = delete;
    tlb_log& operator=(const tlb_log&) = delete;

    // --- the allocator's side: call inside the publishing critical section.
    void unmap(range_kind k, unsigned long start, unsigned long end) {
        add({0, start, end, tlb_event_kind::unmap, k, flush_reason::none, 0});
    }
    void flush(unsigned long start, unsigned long end, flush_reason why) {
        flushes_.fetch_add(1, std::memory_order_relaxed);
        add({0, start, end, tlb_event_kind::flush, range_kind::small, why, 0});
    }
    void hand_out(range_kind k, unsigned long start, unsigned long end) {
        add({0, start, end, tlb_event_kind::hand_out, k, flush_reason::none, 0});
    }
    void release(range_kind k, unsigned long start, unsigned long end) {
        add({0, start, end, tlb_event_kind::release, k, flush_reason::none, 0});
    }

    // --- the observer's side.
    bool recording() const { return record_; }
    // The stamp the next event will get. Read before an operation, it is at
    // most the stamp of any event that operation records.
    std::uint64_t now() const { return seq_.load(std::memory_order_relaxed); }
    std::uint64_t flushes() const { return flushes_.load(std::memory_order_relaxed); }

    // Gives the running task its buffer now, tagged `tag` (events carry
    // it). A task that records without attaching gets one at its first
    // event, tagged by arrival; attaching first keeps the registry's lock
    // (a synchronisation TSan sees) out of the allocator's operations.
    void attach_this_thread(unsigned tag) { buffer(&tag); }

    // Everything recorded since the last take(), in stamp order. The
    // recording threads must be quiescent (see the top of this file).
    std::vector<tlb_event> take() {
        std::vector<tlb_event> all;
        take(all);
        return all;
    }
    // The same into `all` (cleared first), reusing its storage: a harness
    // that drains after every operation allocates nothing.
    void take(std::vector<tlb_event>& all) {
        std::lock_guard<std::mutex> g(registry_);
        all.clear();
        if (buffers_.size() == 1) {
            for (tlb_event& e : buffers_[0]->events)
                e.thread = buffers_[0]->tag;
            all.swap(buffers_[0]->events);
            return;
        }
        for (auto& b : buffers_) {
            for (tlb_event& e : b->events)
                e.thread = b->tag;
            all.insert(all.end(), b->events.begin(), b->events.end());
            b->events.clear();
        }
        if (buffers_.size() > 1)
            std::sort(all.begin(), all.end(),
                      [](const tlb_event& a, const tlb_event& b) { return a.stamp < b.stamp; });
    }
    std::size_t pending() const {
        std::lock_guard<std::mutex> g(registry_);
        std::size_t n = 0;
        for (auto& b : buffers_)
            n += b->events.size();
        return n;
    }

  private:
    struct thread_buffer {
        std::uint64_t owner; // the task's id()
        unsigned tag = 0;
        std::vector<tlb_event> events;
    };
    // The running task's buffer for this log: one cached entry per task
    // (current().tlb_log/tlb_buffer), keyed by the log's id (an address could
    // be reused by a later log).
    static inline std::atomic<std::uint64_t> next_id_{1};

    void add(tlb_event e) {
        if (!record_)
            return;
        e.stamp = seq_.fetch_add(1, std::memory_order_relaxed);
        buffer(nullptr)->events.push_back(e);
    }

    thread_buffer* buffer(const unsigned* tag) {
        task& t = current();
        if (t.tlb_log == id_ && !tag)
            return static_cast<thread_buffer*>(t.tlb_buffer);
        std::lock_guard<std::mutex> g(registry_);
        std::uint64_t me = t.id();
        thread_buffer* b = nullptr;
        for (auto& p : buffers_)
            if (p->owner == me)
                b = p.get();
        if (!b) {
            buffers_.push_back(std::make_unique<thread_buffer>());
            b = buffers_.back().get();
            b->owner = me;
            b->tag = static_cast<unsigned>(buffers_.size() - 1);
        }
        if (tag)
            b->tag = *tag;
        t.tlb_log = id_;
        t.tlb_buffer = b;
        return b;
    }

    const bool record_;
    const std::uint64_t id_ = next_id_.fetch_add(1, std::memory_order_relaxed);
    std::atomic<std::uint64_t> seq_{1}; // 0: "before everything"
    std::atomic<std::uint64_t> flushes_{0};
    mutable std::mutex registry_;
    std::vector<std::unique_ptr<thread_buffer>> buffers_;
};

} // namespace vmap
