// SPDX-License-Identifier: MIT
// harness/faults.hpp: fault injection as the fuzz inputs and properties ask
// for it (config::inject_fault). A map op may carry one planned fault: the
// allocation at that site fails the next time the calling task reaches it,
// during that op only. The plan hangs off the task (vmap::current().user),
// so that in vmap_threads, whose threads are fibers of one OS thread, a
// fault planned by one thread never fails another's allocation.
#pragma once

#include <optional>

#include <vmap/allocator.hpp>
#include <vmap/current.hpp>

namespace harness {

struct fault_plan {
    std::optional<vmap::fault_site> site; // armed for the current op
    bool fired = false;                   // the armed site was reached
};

// config::inject_fault for every allocator the harness builds.
inline bool inject_planned_fault(vmap::fault_site f) {
    auto* p = static_cast<fault_plan*>(vmap::current().user);
    if (!p || !p->site || *p->site != f || p->fired)
        return false;
    p->fired = true;
    return true;
}

// Arms `site` (if any) for the scope of one op; reports whether it fired.
class planned_fault {
  public:
    explicit planned_fault(std::optional<vmap::fault_site> site)
        : plan_{site, false}, saved_(vmap::current().user) {
        vmap::current().user = &plan_;
    }
    ~planned_fault() { vmap::current().user = saved_; }
    planned_fault(const planned_fault&) = delete;
    planned_fault& operator=(const planned_fault&) = delete;
    bool fired() const { return plan_.fired; }

  private:
    fault_plan plan_;
    void* saved_;
};

} // namespace harness
