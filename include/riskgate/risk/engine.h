// The risk engine: for every request, "is this safe right now?" as an explainable Decision.
//
//   risk::Engine engine(policy::load_default().set.value());
//   Decision d = engine.evaluate({.identity = &id, .service = "orders", .method = "GET", .path = "/orders/7"});
//   HookVerdict v = risk::to_verdict(d);          // forward, or 401 / 429 / 403 with their headers
//   ... after the exchange: engine.observe(d, result);   // statuses and sizes feed the baselines
//
// Thread-safe: every worker calls evaluate/observe on one shared Engine. Learned state (per identity,
// per token) lives in sharded tables with a lock per shard, bounded in size, oldest idle evicted
// first; it belongs to the Engine, not to the policy, so a reload keeps every baseline. The policy is
// an immutable compiled snapshot swapped atomically (each thread keeps a reference to the one it
// uses, revalidated by a generation counter); an evaluation in flight finishes on the snapshot it
// started with.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <riskgate/common/decision.h>
#include <riskgate/common/identity.h>
#include <riskgate/policy/policy.h>
#include <riskgate/proxy/request.h>
#include <riskgate/common/result.h>

namespace riskgate::metrics {
class Registry;
}

namespace riskgate::risk {

// Time as the engine sees it. Tests drive a ManualClock to run a synthetic day in seconds.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::uint64_t monotonic_ns() const = 0;  // CLOCK_MONOTONIC: windows, baselines, TTLs
  virtual std::uint64_t unix_ns() const = 0;       // wall clock: decision timestamps
};

class SystemClock final : public Clock {
 public:
  std::uint64_t monotonic_ns() const override;
  std::uint64_t unix_ns() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::uint64_t start_ns = 1'000'000'000'000) : now_(start_ns) {}
  std::uint64_t monotonic_ns() const override { return now_.load(std::memory_order_relaxed); }
  std::uint64_t unix_ns() const override { return kUnixOffset + monotonic_ns(); }
  void advance_ns(std::uint64_t ns) { now_.fetch_add(ns, std::memory_order_relaxed); }
  void advance_ms(std::uint64_t ms) { advance_ns(ms * 1'000'000); }

 private:
  static constexpr std::uint64_t kUnixOffset = 1'700'000'000'000'000'000;
  std::atomic<std::uint64_t> now_;
};

// The facts of one request. Views must stay valid for the call only.
struct RiskInput {
  const RequestIdentity *identity = nullptr;  // required
  std::string_view service;                   // service name (policy kind: Service) or "transparent"
  std::string_view method;
  std::string_view path;                    // without the query
  std::optional<std::uint64_t> body_bytes;  // Content-Length when known
  IdentityId destination_identity = 0;      // the workload being called (identity::Destination)
  std::string_view destination_name;
  std::uint64_t socket_cookie = 0;
  const UpstreamHealth *upstream = nullptr;  // the service's upstream, when the proxy knows it
};

// Names of identity ids, for evidence that mentions identities other than the caller's (the engine
// keeps ids only). riskgated's come from the workload registry.
class IdentityNames {
 public:
  virtual ~IdentityNames() = default;
  // Empty when the id has no name (any more).
  virtual std::string name_of(IdentityId id) const = 0;
};

struct EngineOptions {
  std::size_t max_tokens = 1 << 20;       // tracked token fingerprints (roaming, token rate)
  std::size_t max_subjects = 1 << 16;     // tracked identities (and unknown peers, per address)
  std::uint64_t token_idle_ms = 3600000;  // forget a token unused this long
  std::uint64_t subject_idle_ms = 86400000;
  unsigned shards = 64;                  // power of two
  const Clock *clock = nullptr;          // nullptr = the system clock
  const IdentityNames *names = nullptr;  // nullptr: evidence names other identities by id
};

struct EngineStats {
  std::uint64_t decisions[4] = {};  // by Action
  std::uint64_t unenforced = 0;     // decisions made in observe mode
  std::uint64_t tracked_tokens = 0;
  std::uint64_t tracked_subjects = 0;
  std::uint64_t evicted_tokens = 0;  // pushed out by the size bound (oldest idle first)
  std::uint64_t evicted_subjects = 0;
  std::uint64_t expired_tokens = 0;  // forgotten after their idle time
  std::uint64_t expired_subjects = 0;
  std::uint64_t state_bytes = 0;  // memory held by the state tables
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  std::string policy_version;
};

class CompiledPolicy;
class StateTables;

class Engine {
 public:
  explicit Engine(const policy::PolicySet &policy, EngineOptions options = {});
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  Decision evaluate(const RiskInput &input);
  // Same, into `out`, reusing its strings and vectors (no allocation once they have grown).
  void evaluate(const RiskInput &input, Decision &out);

  // A finished exchange: its status feeds the failure ratio, its body size the payload baseline.
  // Reads the decision's action and subject (what evaluate() set) only.
  void observe(const Decision &decision, const ExchangeResult &result);

  // Compiles and swaps in a new policy; learned state is kept.
  void install(const policy::PolicySet &policy);
  // A load that failed: the running policy stays, the failure is counted and its errors kept.
  void reject(const std::vector<policy::Diagnostic> &diagnostics);
  std::vector<policy::Diagnostic> last_rejection() const;

  std::string policy_version() const;
  EngineStats stats() const;
  // Publishes the state tables' size, memory and evictions at every scrape of `registry`
  // (riskgate_risk_tracked, riskgate_risk_state_bytes, riskgate_risk_evicted_total).
  void watch(metrics::Registry &registry) const;

 private:
  std::shared_ptr<const CompiledPolicy> current() const;
  // The hot path's view of current(): a per-thread copy revalidated against generation_, so a
  // request costs one atomic load instead of the shared_ptr's lock and reference count traffic.
  const CompiledPolicy &snapshot() const;

  EngineOptions options_;
  std::unique_ptr<SystemClock> own_clock_;
  const Clock &clock_;
  // Taken only when a thread's snapshot is stale (after a reload), never per request.
  mutable std::mutex policy_mutex_;
  std::shared_ptr<const CompiledPolicy> policy_;
  std::atomic<std::uint64_t> generation_{0};  // bumped after every install
  std::uint64_t instance_;                    // tells engines apart in the per-thread snapshot cache
  std::unique_ptr<StateTables> state_;
  std::atomic<std::uint64_t> next_id_;
  std::atomic<std::uint64_t> decisions_[4] = {};
  std::atomic<std::uint64_t> unenforced_{0};
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_failed_{0};
  mutable std::mutex rejection_mutex_;
  std::vector<policy::Diagnostic> rejection_;
};

// Keeps an Engine on the policy at `path` (a directory or a file): reloads when a *.yaml/*.yml file
// there changes (inotify, debounced) and when reload() is called (the agent's SIGHUP). A load with
// errors leaves the running policy in force; its diagnostics go to the engine (reject) and stderr.
class PolicyWatcher {
 public:
  // Called after every load attempt, from the reloading thread: a policy is installed when
  // result.ok(). The agent uses it to re-point identities, services and metrics at the new policy.
  using Listener = std::function<void(const policy::LoadResult &result)>;
  PolicyWatcher(Engine &engine, std::string path, Listener listener = {});
  ~PolicyWatcher();
  PolicyWatcher(const PolicyWatcher &) = delete;
  PolicyWatcher &operator=(const PolicyWatcher &) = delete;

  // Starts watching; an error when inotify can not watch the path.
  Result<void> start();
  // Loads now; true when the new policy was installed.
  bool reload();

 private:
  void run();

  Engine &engine_;
  std::string path_;
  Listener listener_;
  std::mutex reload_mutex_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace riskgate::risk
