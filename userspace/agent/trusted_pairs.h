// The policy's fastPath pairs in the kernel. The policy names identities and the registry gives
// them ids, so the pairs are written again whenever either changes: the policy's entries of
// rg_trusted are made equal to the declared pairs whose two names have an id.
#pragma once

#include <mutex>
#include <vector>

#include <riskgate/policy/policy.h>
#include <riskgate/common/result.h>

#include <riskgate/identity/registry.h>
#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::agent {

class TrustedPairs {
 public:
  explicit TrustedPairs(kernel::PinnedMaps &maps) : maps_(maps) {}

  // The pairs of the policy set just installed; the next sync() writes them.
  void declare(const policy::PolicySet &set);
  // Resolves the declared names through `snapshot` and syncs rg_trusted. Every pair that resolves
  // is written even when another does not; the error names the pairs left out and where they are
  // declared, or the map write that failed.
  Result<void> sync(const identity::RegistrySnapshot &snapshot);

 private:
  kernel::PinnedMaps &maps_;
  std::mutex mu_;  // policy reloads (watcher thread) and registry changes (housekeeping) both sync
  std::vector<policy::FastPathPair> declared_;
};

}  // namespace riskgate::agent
