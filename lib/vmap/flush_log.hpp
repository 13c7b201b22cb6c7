// SPDX-License-Identifier: MIT
// vmap/flush_log.hpp: TLB-flush bookkeeping.
//
// There is no TLB in userspace; what matters to correctness is which virtual
// ranges were flushed, and when. Every flush the allocator would issue
// (flush_tlb_kernel_range) is appended here, so a model can check that no
// page freed before a vm_unmap_aliases() is left unflushed after it.
// Recording can be turned off (benchmarks): the counters still run.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace vmap {

enum class flush_reason {
    unmap_aliases, // vm_unmap_aliases(): the union of the blocks' dirty ranges
    free_block,    // a block's range, when the block is freed
    large_unmap,   // a large vm_map_ram() mapping, when it is unmapped
};

inline const char* to_string(flush_reason r) {
    switch (r) {
    case flush_reason::unmap_aliases:
        return "unmap_aliases";
    case flush_reason::free_block:
        return "free_block";
    case flush_reason::large_unmap:
        return "large_unmap";
    }
    return "?";
}

struct flush_range {
    unsigned long start, end; // [start, end)
    flush_reason reason;
};

class flush_log {
  public:
    explicit flush_log(bool record = true) : record_(record) {}

    void flush(unsigned long start, unsigned long end, flush_reason reason) {
        std::lock_guard<std::mutex> g(mu_);
        ++flushes_;
        if (record_)
            entries_.push_back({start, end, reason});
    }

    // Everything recorded since the last take(), oldest first.
    std::vector<flush_range> take() {
        std::lock_guard<std::mutex> g(mu_);
        return std::exchange(entries_, {});
    }
    std::size_t pending() const {
        std::lock_guard<std::mutex> g(mu_);
        return entries_.size();
    }
    std::uint64_t flushes() const {
        std::lock_guard<std::mutex> g(mu_);
        return flushes_;
    }

  private:
    bool record_;
    mutable std::mutex mu_;
    std::vector<flush_range> entries_;
    std::uint64_t flushes_ = 0;
};

} // namespace vmap
