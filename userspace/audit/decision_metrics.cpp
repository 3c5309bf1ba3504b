// The standard riskgate metrics for decisions, policy, upstreams and the audit log itself.
#include <riskgate/audit/decision_log.h>

namespace riskgate::audit {

DecisionMetrics::DecisionMetrics(metrics::Registry &registry)
    : registry_(registry),
      requests_(registry.counter_family(
          "riskgate_requests_total", "Requests decided, by service, action and mode (observe: not enforced)",
          {"service", "action", "mode"})),
      latency_(registry
                   .histogram_family("riskgate_decision_latency_seconds",
                                     "Time to score a request and decide (identity, signals, policy)",
                                     metrics::exponential_buckets(1e-6, 2, 16))
                   .get()),
      score_(registry
                 .histogram_family("riskgate_risk_score", "Risk score of decided requests (0..100)",
                                   metrics::linear_buckets(10, 10, 10))
                 .get()),
      signals_(registry.counter_family("riskgate_signal_firings_total",
                                       "Signals that contributed points to a decision", {"signal"})),
      policy_(registry.gauge_family("riskgate_policy_info", "The policy version in force (value 1)",
                                    {"version"})),
      reloads_(
          registry.counter_family("riskgate_policy_reloads_total", "Policy loads by result", {"result"})),
      upstream_(
          registry.gauge_family("riskgate_upstream_up", "Upstream health (1 healthy, 0 not)", {"upstream"}))
{
  // Series an alert watches with increase(...) > 0 exist at zero from the start, so the first
  // failure is an increase and not the series' first sample.
  reloads_.with({"ok"});
  reloads_.with({"error"});
}

void DecisionMetrics::observe(const Decision &decision)
{
  requests_.with({decision.service, to_string(decision.action), decision.enforced ? "enforce" : "observe"})
      .inc();
  latency_.observe(static_cast<double>(decision.evaluation_ns) * 1e-9);
  score_.observe(decision.score);
  for (const auto &c : decision.contributions)
    if (c.points != 0)
      signals_.with({c.signal}).inc();
}

void DecisionMetrics::policy_loaded(const std::string &version, bool ok)
{
  reloads_.with({ok ? "ok" : "error"}).inc();
  if (!ok)
    return;
  std::lock_guard lock(policy_mutex_);
  if (!policy_version_.empty())
    policy_.with({policy_version_}).set(0);
  policy_version_ = version;
  policy_.with({version}).set(1);
}

void DecisionMetrics::upstream_health(const std::string &upstream, bool healthy)
{
  upstream_.with({upstream}).set(healthy ? 1 : 0);
}

void DecisionMetrics::watch(const DecisionLog &log)
{
  auto &lines = registry_.counter("riskgate_audit_lines_total", "Lines written to the decision log");
  auto &dropped = registry_.counter("riskgate_audit_dropped_total",
                                    "Decisions not logged because the audit queue was full");
  auto &spilled = registry_.counter("riskgate_audit_spilled_total",
                                    "Decisions queued beyond the audit ring while the writer was behind");
  auto &errors = registry_.counter("riskgate_audit_write_errors_total", "Audit lines lost to write errors");
  registry_.add_collector([&log, &lines, &dropped, &spilled, &errors] {
    const auto stats = log.stats();
    lines.set_total(stats.written);
    dropped.set_total(stats.dropped);
    spilled.set_total(stats.spilled);
    errors.set_total(stats.write_errors);
  });
}

}  // namespace riskgate::audit
