// The Gate: riskgated's RequestHook. For every request: who is calling whom (identity), is it safe right
// now (risk engine), make it so (kernel block through the Enforcer), and keep the record (decision
// log, metrics). The proxy sees only the verdict; none of these modules sees the proxy.
#pragma once

#include <atomic>
#include <string_view>

#include <riskgate/enforce/enforce.h>
#include <riskgate/proxy/request.h>
#include <riskgate/risk/engine.h>

#include <riskgate/audit/decision_log.h>
#include <riskgate/identity/destinations.h>
#include <riskgate/identity/resolver.h>

namespace riskgate::agent {

struct GateParts {
  identity::IdentityResolver &resolver;
  risk::Engine &engine;
  Enforcer *enforcer = nullptr;  // null: no kernel (--no-kernel), blocks are 403 only
  audit::DecisionLog *log = nullptr;
  audit::DecisionMetrics *metrics = nullptr;
  const identity::DestinationIdentities *destinations = nullptr;  // null: every destination is world
};

struct GateStats {
  std::uint64_t enforce_failures = 0;  // block decisions whose map write failed (also logged)
  std::uint64_t unobserved = 0;        // completions whose decision had left the per-worker table
};

class Gate final : public RequestHook {
 public:
  explicit Gate(GateParts parts) : parts_(std::move(parts)) {}
  void on_request(const RequestView &request, HookVerdict &verdict) override;
  void on_complete(const RequestView &request, const ExchangeResult &result) override;
  GateStats stats() const;

 private:
  void enforce(const RequestView &request, const Decision &decision);

  GateParts parts_;
  std::atomic<std::uint64_t> enforce_failures_{0};
  std::atomic<std::uint64_t> unobserved_{0};
};

}  // namespace riskgate::agent
