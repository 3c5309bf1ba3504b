// kind: RiskPolicy: signals, thresholds, the limit and block actions, lists, rules and the fast path.
#include <algorithm>

#include <fmt/format.h>

#include <riskgate/common/duration.h>
#include <riskgate/common/net.h>
#include <riskgate/policy/params.h>
#include <riskgate/policy/route.h>

#include "loader.h"

namespace riskgate::policy {

void Loader::risk_policy(const Document &doc)
{
  const auto spec = yaml_.fields(
      doc.spec, {"mode", "signals", "thresholds", "limit", "block", "lists", "rules", "fastPath"},
      "RiskPolicy spec");
  if (!set_.risk_policies.empty())
    yaml_.error(doc.node,
                fmt::format("only one RiskPolicy per policy set (the first is '{}' at {})",
                            set_.risk_policies.front().name, where_string(set_.risk_policies.front().where)));
  RiskPolicy policy;
  policy.name = doc.name;
  policy.where = yaml_.at(doc.node);
  if (spec)
    risk(policy, *spec);
  set_.risk_policies.push_back(std::move(policy));
}

void Loader::risk(RiskPolicy &policy, const Fields &spec)
{
  using Section = void (Loader::*)(RiskPolicy &, const YAML::Node &);
  static constexpr std::pair<std::string_view, Section> kSections[] = {
      {"signals", &Loader::signals},   {"thresholds", &Loader::thresholds}, {"limit", &Loader::limit},
      {"block", &Loader::block},       {"lists", &Loader::lists},           {"rules", &Loader::rules},
      {"fastPath", &Loader::fast_path}};
  if (const auto v = spec.get("mode"))
    policy.mode = mode(*v).value_or(Mode::enforce);
  for (const auto &[key, section] : kSections)
    if (const auto v = spec.get(key))
      (this->*section)(policy, *v);
}

void Loader::limit(RiskPolicy &policy, const YAML::Node &node)
{
  const auto lf = yaml_.fields(node, {"ratePerSecond", "burst", "retryAfter"}, "limit");
  if (!lf)
    return;
  if (const auto x = lf->get("ratePerSecond"))
    policy.limit_rate_per_s = yaml_.number(*x, "ratePerSecond", 0.001, 1e6).value_or(policy.limit_rate_per_s);
  if (const auto x = lf->get("burst"))
    policy.limit_burst = yaml_.number(*x, "burst", 1, 1e6).value_or(policy.limit_burst);
  if (const auto x = lf->get("retryAfter"))
    policy.retry_after_s =
        static_cast<std::uint32_t>(yaml_.duration(*x, "retryAfter", 1000).value_or(5000) / 1000);
}

void Loader::block(RiskPolicy &policy, const YAML::Node &node)
{
  const auto bf = yaml_.fields(node, {"scope", "ttl", "escalate"}, "block");
  if (!bf)
    return;
  if (const auto x = bf->get("scope")) {
    const std::string scope = x->IsScalar() ? x->Scalar() : "";
    if (scope == "ip")
      policy.block_scope = BlockScope::ip;
    else if (scope == "identity")
      policy.block_scope = BlockScope::identity;
    else if (scope == "pair")
      policy.block_scope = BlockScope::pair;
    else if (scope == "connection")
      policy.block_scope = BlockScope::connection;
    else
      yaml_.error(*x, "block.scope must be ip, identity, pair or connection");
  }
  if (const auto x = bf->get("ttl"))
    policy.block_ttl_ms = yaml_.duration(*x, "block.ttl", 1000).value_or(policy.block_ttl_ms);
  if (const auto x = bf->get("escalate"))
    if (const auto ef = yaml_.fields(*x, {"factor", "max"}, "block.escalate")) {
      if (const auto f = ef->get("factor"))
        policy.block_escalate_factor = yaml_.number(*f, "escalate.factor", 1, 100).value_or(2);
      if (const auto m = ef->get("max"))
        policy.block_max_ttl_ms = yaml_.duration(*m, "escalate.max", 1000).value_or(policy.block_max_ttl_ms);
    }
  if (policy.block_max_ttl_ms < policy.block_ttl_ms)
    yaml_.error(node, fmt::format("block.escalate.max ({}) is shorter than block.ttl ({})",
                                  format_duration_ms(policy.block_max_ttl_ms),
                                  format_duration_ms(policy.block_ttl_ms)));
}

void Loader::signals(RiskPolicy &policy, const YAML::Node &node)
{
  std::vector<std::string_view> signal_names;
  for (const auto &spec : signal_specs()) signal_names.push_back(spec.name);
  const auto named = yaml_.fields(node, signal_names, "signals", "signal");
  if (!named)
    return;
  for (const auto &[name, settings] : *named) signal(policy, name, settings);
}

// One signal's settings: enabled, weight and the parameters its spec defines (params.h).
void Loader::signal(RiskPolicy &policy, const std::string &name, const YAML::Node &settings)
{
  const auto &spec = *find_signal(name);
  std::vector<std::string_view> allowed = {"enabled", "weight"};
  for (const auto &param : spec.params) allowed.push_back(param.key);
  const auto sf = yaml_.fields(settings, allowed, fmt::format("signal '{}'", name));
  if (!sf)
    return;
  Signal signal;
  signal.weight = spec.default_weight;
  for (const auto &[key, value] : *sf) {
    if (key == "enabled") {
      signal.enabled = yaml_.boolean(value, "enabled").value_or(true);
    } else if (key == "weight") {
      signal.weight = yaml_.integer(value, fmt::format("{}.weight", name), 0, 100).value_or(signal.weight);
    } else if (!value.IsScalar()) {
      yaml_.error(value, fmt::format("{}.{} must be a single value", name, key));
    } else if (const auto problem = check_param(*find_param(spec, key), value.Scalar())) {
      yaml_.error(value, fmt::format("{}.{}: {}", name, key, *problem));
    } else {
      signal.params[key] = value.Scalar();
    }
  }
  policy.signals[name] = std::move(signal);
}

void Loader::thresholds(RiskPolicy &policy, const YAML::Node &node)
{
  const auto tf = yaml_.fields(node, {"challenge", "limit", "block"}, "thresholds");
  if (!tf)
    return;
  bool ok = true;
  auto read = [&](const char *key, int &out) {
    if (const auto v = tf->get(key)) {
      if (const auto value = yaml_.integer(*v, fmt::format("thresholds.{}", key), 1, 100))
        out = *value;
      else
        ok = false;
    }
  };
  read("challenge", policy.challenge_at);
  read("limit", policy.limit_at);
  read("block", policy.block_at);
  if (ok && !(policy.challenge_at < policy.limit_at && policy.limit_at < policy.block_at))
    yaml_.error(node, fmt::format("thresholds must rise: challenge ({}) < limit ({}) < block ({})",
                                  policy.challenge_at, policy.limit_at, policy.block_at));
}

void Loader::lists(RiskPolicy &policy, const YAML::Node &node)
{
  const auto lf = yaml_.fields(node, {"deny", "watch"}, "lists");
  if (!lf)
    return;
  list(*lf, "deny", policy.deny_identities, policy.deny_cidrs);
  list(*lf, "watch", policy.watch_identities, policy.watch_cidrs);
}

void Loader::list(const Fields &lists, const char *which, std::vector<std::string> &identities,
                  std::vector<std::string> &cidrs)
{
  const auto list = lists.get(which);
  if (!list)
    return;
  const auto f = yaml_.fields(*list, {"identities", "cidrs"}, fmt::format("lists.{}", which));
  if (!f)
    return;
  if (const auto ids = f->get("identities"))
    names(*ids, fmt::format("lists.{}.identities", which), false, identities);
  if (const auto c = f->get("cidrs")) {
    cidrs = yaml_.strings(*c, fmt::format("lists.{}.cidrs", which));
    if (c->IsSequence())
      for (const auto &item : *c)
        if (item.IsScalar())
          if (const auto parsed = net::parse_prefix(item.Scalar()); !parsed)
            yaml_.error(item, parsed.error());
  }
}

void Loader::rules(RiskPolicy &policy, const YAML::Node &node)
{
  if (!yaml_.list(node, "rules"))
    return;
  std::set<std::string> seen;
  for (const auto &item : node) rule(policy, item, seen);
}

void Loader::rule(RiskPolicy &policy, const YAML::Node &node, std::set<std::string> &seen)
{
  const auto rf = yaml_.fields(node, {"name", "allow", "deny", "mode"}, "a rule");
  if (!rf)
    return;
  Rule rule;
  rule.where = yaml_.at(node);
  if (const auto name = rf->get("name")) {
    rule.name = yaml_.string(*name, "rule name").value_or("");
    if (!rule.name.empty() && !seen.insert(rule.name).second)
      yaml_.error(*name, fmt::format("duplicate rule name '{}'", rule.name));
  } else {
    yaml_.error(node, "a rule needs a name (it appears in every decision it makes)");
  }
  const auto allow = rf->get("allow");
  const auto deny = rf->get("deny");
  if (allow.has_value() == deny.has_value()) {
    yaml_.error(node, fmt::format("rule '{}' needs exactly one of allow or deny", rule.name));
    return;
  }
  rule.effect = allow ? Rule::Effect::allow : Rule::Effect::deny;
  const YAML::Node &body = allow ? *allow : *deny;
  if (const auto m = rf->get("mode"))
    rule.mode = mode(*m);
  const auto bf = yaml_.fields(body, {"from", "to", "routes"}, fmt::format("rule '{}'", rule.name));
  if (!bf)
    return;
  if (const auto from = bf->get("from"))
    names(*from, fmt::format("rule '{}' from", rule.name), false, rule.from);
  if (const auto to = bf->get("to"))
    names(*to, fmt::format("rule '{}' to", rule.name), true, rule.to);
  if (const auto routes = bf->get("routes")) {
    rule.routes = yaml_.strings(*routes, fmt::format("rule '{}' routes", rule.name));
    std::size_t i = 0;
    for (const auto &item : *routes) {
      if (i >= rule.routes.size())
        break;
      if (const auto problem = check_route_pattern(rule.routes[i++]))
        yaml_.error(item, *problem);
    }
  }
  if (rule.from.empty() && rule.to.empty() && rule.routes.empty())
    yaml_.error(body, fmt::format("rule '{}' matches every request; give it from, to or routes", rule.name));
  policy.rules.push_back(std::move(rule));
}

// fastPath: [{from: [names], to: [names]}], each entry every (from, to) combination. A pair may be
// declared once: a second declaration is more likely a mistake in one of the two than an intent.
void Loader::fast_path(RiskPolicy &policy, const YAML::Node &node)
{
  if (!yaml_.list(node, "fastPath", "of {from, to} entries"))
    return;
  std::map<std::pair<std::string, std::string>, SourceLocation> declared;
  for (const auto &item : node) {
    const auto entry = yaml_.fields(item, {"from", "to"}, "a fastPath entry");
    if (!entry)
      continue;
    const auto clients = fast_path_side(*entry, item, "from");
    const auto servers = fast_path_side(*entry, item, "to");
    for (const auto &client : clients)
      for (const auto &server : servers) {
        const auto [first, fresh] = declared.emplace(std::pair{client, server}, yaml_.at(item));
        if (fresh)
          policy.fast_path.push_back({client, server, yaml_.at(item)});
        else
          yaml_.error(item, fmt::format("fastPath pair {} -> {} is already declared at {}", client, server,
                                        where_string(first->second)));
      }
  }
}

// One side of a fastPath entry: identity names, each once. Neither '*' nor 'world': trust is given
// pair by pair, and the fast path joins two local workloads, which an unknown peer is not.
std::vector<std::string> Loader::fast_path_side(const Fields &entry, const YAML::Node &item,
                                                std::string_view side)
{
  std::vector<std::string> out;
  const auto list = entry.get(side);
  if (!list) {
    yaml_.error(item, fmt::format("a fastPath entry needs {} (a list of identity names)", side));
    return out;
  }
  const std::string context = fmt::format("fastPath {}", side);
  if (!list->IsSequence() || list->size() == 0) {
    yaml_.error(*list, fmt::format("{} must be a non-empty list of identity names", context));
    return out;
  }
  for (const auto &name_node : *list) {
    const auto name = yaml_.string(name_node, fmt::format("each entry of {}", context));
    if (!name)
      continue;
    if (*name == "*") {
      yaml_.error(
          name_node,
          fmt::format("{}: '*' is not allowed; name each identity (trust is given pair by pair)", context));
    } else if (*name == kWorld) {
      yaml_.error(name_node, fmt::format("{}: 'world' (unknown peers) cannot take the fast path, which joins "
                                         "two local workloads",
                                         context));
    } else if (std::find(out.begin(), out.end(), *name) != out.end()) {
      yaml_.error(name_node, fmt::format("{}: duplicate identity '{}'", context, *name));
    } else {
      references_.push_back({*name, yaml_.at(name_node), context, false});
      out.push_back(*name);
    }
  }
  return out;
}

}  // namespace riskgate::policy
