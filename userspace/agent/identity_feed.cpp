#include "agent/identity_feed.h"

#include <fmt/format.h>

namespace riskgate::agent {

Result<void> feed_identities(identity::WorkloadRegistry &registry, kernel::PinnedMaps *maps)
{
  auto snapshot = registry.rescan();
  if (!snapshot)
    return make_error(fmt::format("identity registry: {}", snapshot.error()));
  for (const auto &warning : (*snapshot)->warnings)
    fmt::print(stderr, "riskgated: identity registry: {}\n", warning);
  if (!maps)
    return {};
  if (auto synced = maps->sync_identities((*snapshot)->records()); !synced)
    return make_error(fmt::format("identity feed to the kernel: {}", synced.error()));
  return {};
}

}  // namespace riskgate::agent
