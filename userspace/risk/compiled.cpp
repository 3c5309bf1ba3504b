#include "compiled.h"

#include <cmath>

#include <riskgate/policy/params.h>

namespace riskgate::risk {

namespace {

// Weight, switch and parameters of one signal: the policy's values over the documented defaults.
class SignalReader {
 public:
  SignalReader(const policy::RiskPolicy *policy, const char *name) : spec_(*policy::find_signal(name))
  {
    if (policy)
      if (const auto it = policy->signals.find(name); it != policy->signals.end())
        signal_ = &it->second;
  }
  SignalOn on() const
  {
    return signal_ ? SignalOn{signal_->enabled, signal_->weight} : SignalOn{true, spec_.default_weight};
  }
  double operator[](const char *key) const
  {
    const policy::ParamSpec &param = *policy::find_param(spec_, key);
    if (signal_)
      if (const auto it = signal_->params.find(key); it != signal_->params.end())
        return policy::param_value(param, it->second);
    return policy::param_value(param, param.default_value);
  }

 private:
  const policy::SignalSpec &spec_;
  const policy::Signal *signal_ = nullptr;
};

constexpr std::uint64_t kMsNs = 1'000'000;

std::uint64_t ms_to_ns(double ms)
{
  return static_cast<std::uint64_t>(ms) * kMsNs;
}

}  // namespace

std::shared_ptr<const CompiledPolicy> compile(const policy::PolicySet &set)
{
  auto out = std::make_shared<CompiledPolicy>();
  out->version = set.version;
  const policy::RiskPolicy defaults;
  const policy::RiskPolicy *source = set.risk_policies.empty() ? nullptr : &set.risk_policies.front();
  const policy::RiskPolicy &p = source ? *source : defaults;

  out->mode = p.mode;
  out->challenge_at = p.challenge_at;
  out->limit_at = p.limit_at;
  out->block_at = p.block_at;
  out->limit_rate_per_s = p.limit_rate_per_s;
  out->limit_burst = p.limit_burst;
  out->retry_after_s = p.retry_after_s;
  out->block_scope = p.block_scope;
  out->block_ttl_ms = p.block_ttl_ms;
  out->escalate_factor = p.block_escalate_factor;
  out->block_max_ttl_ms = p.block_max_ttl_ms;

  out->credential = SignalReader(source, "credential").on();
  out->binding = SignalReader(source, "binding").on();
  out->watchlist = SignalReader(source, "watchlist").on();
  {
    const SignalReader r(source, "roaming");
    out->roaming = {r.on(), ms_to_ns(r["window"]), static_cast<unsigned>(r["maxAddresses"])};
  }
  {
    const SignalReader r(source, "rate");
    const double half_life_s = r["halfLife"] / 1000.0;
    out->rate = {r.on(), ms_to_ns(r["warmup"]), static_cast<float>(1.0 - std::exp2(-1.0 / half_life_s)),
                 r["sigma"], r["minRate"]};
  }
  {
    const SignalReader r(source, "novelty");
    out->novelty = {r.on(), ms_to_ns(r["learn"]), ms_to_ns(r["scanWindow"]), r["scanBurst"],
                    static_cast<int>(r["scanWeight"])};
  }
  {
    const SignalReader r(source, "failures");
    out->failures = {r.on(), ms_to_ns(r["window"]), r["ratio"], r["minRequests"]};
  }
  {
    const SignalReader r(source, "payload");
    out->payload = {r.on(), static_cast<std::uint32_t>(r["warmup"]), r["sigma"]};
  }
  {
    const SignalReader r(source, "health");
    out->health = {r.on(), r["errorRatio"], r["latency"]};
  }

  out->deny_identities.insert(p.deny_identities.begin(), p.deny_identities.end());
  out->watch_identities.insert(p.watch_identities.begin(), p.watch_identities.end());
  for (const auto &text : p.deny_cidrs)
    out->deny_cidrs.push_back(net::to_mapped_prefix(*net::parse_prefix(text)));
  for (const auto &text : p.watch_cidrs)
    out->watch_cidrs.push_back(net::to_mapped_prefix(*net::parse_prefix(text)));
  for (const auto &rule : p.rules) {
    CompiledRule compiled;
    compiled.name = rule.name;
    compiled.allow = rule.effect == policy::Rule::Effect::allow;
    for (const auto &name : rule.from)
      if (name != "*")
        compiled.from.insert(name);
    for (const auto &name : rule.to)
      if (name != "*")
        compiled.to.insert(name);
    for (const auto &route : rule.routes)
      if (route != "*")
        compiled.routes.push_back(policy::parse_route_pattern(route));
    compiled.mode = rule.mode.value_or(p.mode);
    out->rules.push_back(std::move(compiled));
  }
  for (const auto &service : set.services)
    out->services[service.name] = {service.jwt && service.jwt->required, service.bindings};
  return out;
}

}  // namespace riskgate::risk
