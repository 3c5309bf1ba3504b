// The kernel half of riskgated's startup: attach the datapath where the options say, report how
// (XDP native or generic fallback, re-adopted pins). Expired entries and released sockets are the
// enforcer's garbage collection (enforce/map_enforcer.h).
#pragma once

#include <memory>

#include <riskgate/common/result.h>

#include "agent.h"
#include <riskgate/kernel/datapath.h>

namespace riskgate::agent {

// Loads and attaches the datapath: cgroup programs on --cgroup (default: the cgroup v2 root),
// XDP on each --xdp interface, pins under --pin-root. Prints what it did to stderr.
Result<std::unique_ptr<kernel::Datapath>> start_datapath(const Options &options);

// Says loudly that nothing is enforced in the kernel (--no-kernel).
void warn_no_kernel();

}  // namespace riskgate::agent
