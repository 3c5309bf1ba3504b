// The engine's state tables in the Prometheus exposition: how much is tracked, what it costs, and
// what the bounds pushed out (size: the table was full, oldest idle first; idle: expired).
#include <riskgate/admin/metrics.h>
#include <riskgate/risk/engine.h>

namespace riskgate::risk {

void Engine::watch(metrics::Registry &registry) const
{
  auto &tracked =
      registry.gauge_family("riskgate_risk_tracked", "Entries in the risk engine's state tables", {"table"});
  auto &bytes = registry.gauge("riskgate_risk_state_bytes", "Memory held by the risk engine's state tables");
  auto &evicted = registry.counter_family(
      "riskgate_risk_evicted_total",
      "State entries removed: size = the table was full (least recently used first), idle = expired",
      {"table", "reason"});
  registry.add_collector([this, &tracked, &bytes, &evicted] {
    const EngineStats s = stats();
    tracked.with({"tokens"}).set(static_cast<double>(s.tracked_tokens));
    tracked.with({"subjects"}).set(static_cast<double>(s.tracked_subjects));
    bytes.set(static_cast<double>(s.state_bytes));
    evicted.with({"tokens", "size"}).set_total(s.evicted_tokens);
    evicted.with({"tokens", "idle"}).set_total(s.expired_tokens);
    evicted.with({"subjects", "size"}).set_total(s.evicted_subjects);
    evicted.with({"subjects", "idle"}).set_total(s.expired_subjects);
  });
}

}  // namespace riskgate::risk
