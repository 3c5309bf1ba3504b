// Decision -> what the proxy sends. Unenforced decisions (observe mode) are forwarded like allows.
#include "answer.h"

#include <charconv>

#include <fmt/format.h>

#include <riskgate/identity/resolver.h>

namespace riskgate::agent {

namespace {

void add_decision_header(HookVerdict &verdict, std::uint64_t id)
{
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, id).ptr;
  verdict.add_header("x-riskgate-decision", std::string_view(digits, end - digits));
}

const Contribution *find(const Decision &decision, std::string_view signal)
{
  for (const auto &contribution : decision.contributions)
    if (contribution.signal == signal)
      return &contribution;
  return nullptr;
}

}  // namespace

void to_verdict(const Decision &decision, HookVerdict &verdict)
{
  verdict.reset();
  verdict.decision_id = decision.id;
  if (decision.action == Action::allow || !decision.enforced) {
    verdict.kind = HookVerdict::Kind::forward;
    verdict.headers.reserve(64 + decision.source_identity_name.size());
    add_decision_header(verdict, decision.id);
    verdict.add_header("x-riskgate-identity", decision.source_identity_name);
    return;
  }
  verdict.kind = HookVerdict::Kind::respond;
  switch (decision.action) {
    case Action::challenge: {
      verdict.status = 401;
      const Contribution *credential = find(decision, "credential");
      std::string challenge;
      if (credential && decision.token_fingerprint.empty()) {
        // No token at all: RFC 6750 3.1 says no error code, just the scheme.
        verdict.reason = "credential_required";
        challenge = identity::bearer_challenge();
      } else if (credential) {
        verdict.reason = "invalid_token";
        challenge = identity::bearer_challenge("invalid_token", credential->evidence);
      } else {
        // A valid token whose use looks risky: ask for a fresh, stronger one (RFC 9470 step-up).
        verdict.reason = "risk_challenge";
        std::string signals;
        for (const auto &c : decision.contributions)
          signals += fmt::format("{}{}", signals.empty() ? "" : ", ", c.signal);
        challenge = identity::bearer_challenge("insufficient_user_authentication",
                                               fmt::format("risk score {}: {}", decision.score, signals));
      }
      verdict.add_header("www-authenticate", challenge);
      break;
    }
    case Action::limit:
      verdict.status = 429;
      verdict.reason = "rate_limited";
      verdict.add_header("retry-after", std::to_string(std::max<std::uint32_t>(decision.retry_after_s, 1)));
      break;
    case Action::block:
      verdict.status = 403;
      verdict.reason = "blocked";
      verdict.close_after = true;
      break;
    case Action::allow: break;
  }
  add_decision_header(verdict, decision.id);
}

HookVerdict to_verdict(const Decision &decision)
{
  HookVerdict verdict;
  to_verdict(decision, verdict);
  return verdict;
}

HookVerdict unauthorized(const RequestIdentity &identity, std::string_view realm)
{
  HookVerdict verdict;
  verdict.kind = HookVerdict::Kind::respond;
  verdict.status = 401;
  const bool presented = identity.credential != CredentialStatus::none;
  verdict.reason = presented ? "invalid_token" : "missing_token";
  const std::string_view reason = identity.failure_reason.empty() ? std::string_view("invalid token")
                                                                  : std::string_view(identity.failure_reason);
  verdict.add_header("WWW-Authenticate", presented
                                             ? identity::bearer_challenge("invalid_token", reason, realm)
                                             : identity::bearer_challenge({}, {}, realm));
  return verdict;
}

}  // namespace riskgate::agent
