// IdentityFeed: the background loop that keeps workload identities and credentials current while
// riskgated runs. Each round: reload the static identity file, list this node's pods (in a cluster,
// at its own interval), walk the cgroup tree, hand a changed snapshot to the sink (the agent writes
// it into the kernel: PinnedMaps::sync_identities(snapshot.records())), and refresh the resolver's
// JWKS files/URLs and revocation lists. Errors are reported once per distinct message; whatever
// failed keeps its previous state in force.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <riskgate/result.h>

#include "identity/kubernetes.h"
#include "identity/registry.h"
#include "identity/resolver.h"

namespace riskgate::identity {

struct IdentityFeedOptions {
  std::chrono::milliseconds interval{2000};        // rescan + file reloads
  std::chrono::milliseconds kubernetes_interval{10000};
  std::optional<KubernetesConfig> kubernetes;      // KubernetesConfig::in_cluster() when in a cluster
};

class IdentityFeed {
 public:
  using Sink = std::function<Result<void>(const RegistrySnapshot &)>;
  using Log = std::function<void(const std::string &)>;

  // resolver may be null (kernel-only agent); sink may be empty (no kernel).
  IdentityFeed(std::shared_ptr<WorkloadRegistry> registry, IdentityResolver *resolver, Sink sink,
               IdentityFeedOptions options, Log log);
  ~IdentityFeed();
  IdentityFeed(const IdentityFeed &) = delete;
  IdentityFeed &operator=(const IdentityFeed &) = delete;

  // One round now (also what the thread runs); thread-safe, rounds are serialized. Ok(true): a new
  // snapshot went to the sink.
  Result<bool> run_once(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  void start();  // the loop on its own thread
  void stop();   // idempotent; also in the destructor

 private:
  void report(const Result<void> &result);

  std::shared_ptr<WorkloadRegistry> registry_;
  IdentityResolver *resolver_;
  Sink sink_;
  IdentityFeedOptions options_;
  Log log_;
  std::optional<std::chrono::steady_clock::time_point> next_kubernetes_;
  std::shared_ptr<const RegistrySnapshot> last_sent_;
  std::set<std::string> reported_;  // errors already logged, so a broken file is not logged every round
  std::mutex round_mu_;              // one round at a time (housekeeping thread and policy reloads)

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace riskgate::identity
