// A policy set compiled for evaluation: every parameter converted to the unit the engine counts in,
// names interned in lookup structures. Immutable once built; the engine swaps whole snapshots.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/policy/policy.h>
#include <riskgate/risk/engine.h>

#include <riskgate/common/net.h>
#include <riskgate/policy/route.h>

namespace riskgate::risk {

struct SignalOn {
  bool on = true;
  int weight = 0;
  bool active() const { return on && weight > 0; }
};

struct CompiledRule {
  std::string name;
  bool allow = false;
  std::set<std::string, std::less<>> from;   // empty = any
  std::set<std::string, std::less<>> to;     // identity or service names; empty = any
  std::vector<policy::RoutePattern> routes;  // empty = any
  policy::Mode mode = policy::Mode::enforce;
};

struct CompiledService {
  bool jwt_required = false;
  std::vector<policy::Binding> bindings;
};

// Each stateful signal's parameters, named so that a stage can take just its own.
struct RoamingParams {
  SignalOn s;
  std::uint64_t window_ns;
  unsigned max_addresses;
};
struct RateParams {
  SignalOn s;
  std::uint64_t warmup_ns;
  float alpha;  // EWMA weight of one second
  double sigma;
  double min_rate;
};
struct NoveltyParams {
  SignalOn s;
  std::uint64_t learn_ns;
  std::uint64_t scan_window_ns;
  double scan_burst;
  int scan_weight;
};
struct FailureParams {
  SignalOn s;
  std::uint64_t window_ns;
  double ratio;
  double min_requests;
};
struct PayloadParams {
  SignalOn s;
  std::uint32_t warmup;
  double sigma;
};
struct HealthParams {
  SignalOn s;
  double error_ratio;
  double latency_ms;
};

class CompiledPolicy {
 public:
  std::string version;
  policy::Mode mode = policy::Mode::enforce;
  int challenge_at = 40, limit_at = 60, block_at = 85;
  double limit_rate_per_s = 1, limit_burst = 3;
  std::uint32_t retry_after_s = 5;
  BlockScope block_scope = BlockScope::identity;
  std::uint64_t block_ttl_ms = 600000;
  double escalate_factor = 2;
  std::uint64_t block_max_ttl_ms = 86400000;

  SignalOn credential, binding, watchlist;
  RoamingParams roaming;
  RateParams rate;
  NoveltyParams novelty;
  FailureParams failures;
  PayloadParams payload;
  HealthParams health;

  std::set<std::string, std::less<>> deny_identities, watch_identities;
  std::vector<net::MappedPrefix> deny_cidrs, watch_cidrs;
  std::vector<CompiledRule> rules;
  std::map<std::string, CompiledService, std::less<>> services;
};

std::shared_ptr<const CompiledPolicy> compile(const policy::PolicySet &set);

}  // namespace riskgate::risk
