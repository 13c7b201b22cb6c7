// SPDX-License-Identifier: MIT
// harness/faults.hpp: fault injection as the fuzz inputs and properties ask
// for it (config::inject_fault). A map op may carry one planned fault: the
// allocation at that site fails the next time the calling thread reaches
// it, during that op only. The plan is per thread, so that in vmap_threads
// a fault planned by one thread never fails another's allocation.
#pragma once

#include <optional>

#include <vmap/allocator.hpp>

namespace harness {

struct fault_plan {
    std::optional<vmap::fault_site> site; // armed for the current op
    bool fired = false;                   // the armed site was reached
};

namespace detail {
inline thread_local fault_plan current_plan;
}

// config::inject_fault for every allocator the harness builds.
inline bool inject_planned_fault(vmap::fault_site f) {
    fault_plan& p = detail::current_plan;
    if (!p.site || *p.site != f || p.fired)
        return false;
    p.fired = true;
    return true;
}

// Arms `site` (if any) for the scope of one op; reports whether it fired.
class planned_fault {
  public:
    explicit planned_fault(std::optional<vmap::fault_site> site) {
        detail::current_plan = {site, false};
    }
    ~planned_fault() { detail::current_plan = {}; }
    planned_fault(const planned_fault&) = delete;
    planned_fault& operator=(const planned_fault&) = delete;
    bool fired() const { return detail::current_plan.fired; }
};

} // namespace harness
