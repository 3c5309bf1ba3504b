// Synthetic traffic for risk engine tests: workloads with addresses and tokens, requests on a
// ManualClock, so a day of traffic runs in seconds and every window and baseline is deterministic.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include <riskgate/policy/policy.h>
#include <riskgate/risk/engine.h>

#include "agent/answer.h"

namespace riskgate::test {

inline sockaddr_storage ipv4(const char *address, std::uint16_t port = 40000)
{
  sockaddr_storage out{};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &a.sin_addr);
  std::memcpy(&out, &a, sizeof a);
  return out;
}

inline RequestIdentity workload(IdentityId id, const std::string &name, const char *address,
                                const std::string &token = {})
{
  RequestIdentity who;
  who.workload = id;
  who.workload_name = name;
  who.source = ipv4(address);
  who.token_fingerprint = token;
  who.credential = token.empty() ? CredentialStatus::none : CredentialStatus::valid;
  who.subject = token.empty() ? std::string() : "svc:" + name;
  return who;
}

inline policy::PolicySet policy_from(const std::string &yaml)
{
  auto loaded = policy::load_text(yaml, "test.yaml");
  if (!loaded.ok()) {
    std::string all;
    for (const auto &d : loaded.diagnostics) all += policy::to_string(d) + "\n";
    throw std::runtime_error("test policy does not load:\n" + all);
  }
  return *loaded.set;
}

// The input of a request by `who`, without a body, callee or upstream.
inline risk::RiskInput request_input(const RequestIdentity &who, std::string_view service,
                                     std::string_view method, std::string_view path)
{
  risk::RiskInput input;
  input.identity = &who;
  input.service = service;
  input.method = method;
  input.path = path;
  return input;
}

// One engine on a manual clock.
struct Lab {
  explicit Lab(const policy::PolicySet &set, risk::EngineOptions options = {})
      : engine(set, with_clock(options, clock))
  {
  }
  static risk::EngineOptions with_clock(risk::EngineOptions options, const risk::ManualClock &clock)
  {
    options.clock = &clock;
    return options;
  }

  // Evaluates one request and reports the exchange as the proxy would (status from the upstream
  // when forwarded, the engine's own answer otherwise).
  Decision request(const RequestIdentity &who, std::string_view method, std::string_view path,
                   int upstream_status = 200, std::string_view service = "orders", std::uint64_t body = 0)
  {
    risk::RiskInput input = request_input(who, service, method, path);
    input.body_bytes = body;
    Decision d = engine.evaluate(input);
    const HookVerdict verdict = agent::to_verdict(d);
    ExchangeResult result;
    result.decision_id = d.id;
    result.status = verdict.kind == HookVerdict::Kind::forward ? upstream_status : verdict.status;
    result.request_body_bytes = body;
    engine.observe(d, result);
    return d;
  }

  risk::ManualClock clock;
  risk::Engine engine;
};

inline bool has_signal(const Decision &d, std::string_view signal)
{
  for (const auto &c : d.contributions)
    if (c.signal == signal)
      return true;
  return false;
}

}  // namespace riskgate::test
