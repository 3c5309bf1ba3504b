// IdentityFeed keeps workload identities and credentials current while riskgated runs. Two kinds of
// work, kept apart so that one cannot hold up the other:
// - fetch: the remote sources, which can each block up to their timeout when a server is down or
//   silent: this node's pods from the API server (at its own interval) and the resolver's JWKS
//   files/URLs and revocation lists. Runs on the feed's own thread.
// - rescan: the local sources (the static identity file, the cgroup tree), then a changed snapshot
//   to the sink (the agent writes it into the kernel: PinnedMaps::sync_identities). Never waits on
//   the network, so a new pod's cgroup gets its identity on the next rescan even while the API
//   server or an issuer hangs.
// Errors are reported once per distinct message; whatever failed keeps its previous state in force.
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

#include <riskgate/common/result.h>

#include <riskgate/identity/kubernetes.h>
#include <riskgate/identity/registry.h>
#include <riskgate/identity/resolver.h>

namespace riskgate::identity {

struct IdentityFeedOptions {
  std::chrono::milliseconds interval{2000};  // rescan + file reloads
  std::chrono::milliseconds kubernetes_interval{10000};
  std::optional<KubernetesConfig> kubernetes;  // KubernetesConfig::in_cluster() when in a cluster
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

  // A fetch, then a rescan, on the calling thread (what the thread runs each interval).
  // Ok(true): a new snapshot went to the sink.
  Result<bool> run_once(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Local sources and the sink only; thread-safe, rescans are serialized but never wait for a fetch.
  Result<bool> rescan_once();

  void start();       // run_once on its own thread, every interval
  void fetch_soon();  // the thread's next round now (new services to fetch keys for)
  void stop();        // idempotent; also in the destructor (waits for a fetch in progress)

 private:
  void fetch_once(std::chrono::steady_clock::time_point now);
  void report(const Result<void> &result);

  std::shared_ptr<WorkloadRegistry> registry_;
  IdentityResolver *resolver_;
  Sink sink_;
  IdentityFeedOptions options_;
  Log log_;
  std::optional<std::chrono::steady_clock::time_point> next_kubernetes_;
  std::shared_ptr<const RegistrySnapshot> last_sent_;
  std::set<std::string> reported_;  // errors already logged, so a broken file is not logged every round
  std::mutex report_mu_;            // guards reported_ (fetch and rescan both report)
  std::mutex fetch_mu_;             // one fetch at a time; guards next_kubernetes_
  std::mutex rescan_mu_;            // one rescan at a time; guards last_sent_

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool fetch_now_ = false;
  std::thread thread_;
};

}  // namespace riskgate::identity
