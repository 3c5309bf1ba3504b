// The identity registry's snapshot, written into the kernel's maps (cgroup id -> identity, ipcache,
// id <-> name) so that sockops, connect and XDP recognise workloads and the CLI names them.
#pragma once

#include <riskgate/result.h>

#include "identity/registry.h"
#include "kernel/pinned_maps.h"

namespace riskgate::agent {

// Rescans the cgroup tree (new workloads appear as new cgroups) and writes the result; `maps` null
// (--no-kernel) only rescans.
Result<void> feed_identities(identity::WorkloadRegistry &registry, kernel::PinnedMaps *maps);

}  // namespace riskgate::agent
