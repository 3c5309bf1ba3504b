// The identity registry's snapshot, written into the kernel's maps (cgroup id -> identity, ipcache,
// id <-> name) so that sockops, connect and XDP recognise workloads and the CLI names them.
#pragma once

#include <riskgate/result.h>

#include "identity/registry.h"
#include "kernel/pinned_maps.h"

namespace riskgate::agent {

std::vector<kernel::IdentityRecord> kernel_records(const identity::RegistrySnapshot &snapshot);

// Rescans the cgroup tree and writes the result; returns the snapshot's warnings joined.
Result<void> feed_identities(identity::WorkloadRegistry &registry, kernel::PinnedMaps *maps);

}  // namespace riskgate::agent
