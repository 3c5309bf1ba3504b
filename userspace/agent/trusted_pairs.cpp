#include "trusted_pairs.h"

#include <set>
#include <string>

#include <fmt/format.h>

namespace riskgate::agent {

void TrustedPairs::declare(const policy::PolicySet &set)
{
  std::lock_guard lock(mu_);
  declared_.clear();
  for (const auto &risk_policy : set.risk_policies)
    declared_.insert(declared_.end(), risk_policy.fast_path.begin(), risk_policy.fast_path.end());
}

Result<void> TrustedPairs::sync(const identity::RegistrySnapshot &snapshot)
{
  std::lock_guard lock(mu_);
  std::set<std::pair<IdentityId, IdentityId>> pairs;
  std::vector<std::string> unresolved;
  for (const auto &pair : declared_) {
    const auto *client = snapshot.find(pair.from);
    const auto *server = snapshot.find(pair.to);
    if (client && server)
      pairs.insert({client->id, server->id});
    else
      unresolved.push_back(fmt::format("{} -> {} ({}:{}:{})", pair.from, pair.to, pair.where.file,
                                       pair.where.line, pair.where.column));
  }
  if (auto synced = maps_.sync_trusted(pairs); !synced)
    return make_error(fmt::format("fast path: {}", synced.error()));
  if (!unresolved.empty())
    return make_error(fmt::format("fast path: left out until the registry has both identities: {}",
                                  fmt::join(unresolved, ", ")));
  return {};
}

}  // namespace riskgate::agent
