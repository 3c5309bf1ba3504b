// The stages around the signals: the request's keys, lists, rules, credential, score and action.
#include "stages.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <riskgate/policy/params.h>
#include <riskgate/policy/route.h>

namespace riskgate::risk {

namespace {

constexpr std::uint64_t kSecondNs = 1'000'000'000;
constexpr std::uint64_t kSubjectAddressBit = 1ULL << 63;

std::optional<net::MappedAddr> address_bytes(const sockaddr_storage &address)
{
  auto mapped = net::to_mapped(address);
  if (!mapped)
    return std::nullopt;
  return *mapped;
}

std::uint64_t address_hash(const std::optional<net::MappedAddr> &address)
{
  return address ? hash_bytes(address->data(), address->size(), 0xad) : 0;
}

// Subjects are identities; unknown peers (identity 0) are told apart by source address.
std::uint64_t subject_key(IdentityId identity, std::uint64_t address_hash)
{
  return identity != 0 ? mix64(identity) & ~kSubjectAddressBit : address_hash | kSubjectAddressBit;
}

bool in_cidrs(const std::vector<net::MappedPrefix> &cidrs, const std::optional<net::MappedAddr> &address)
{
  if (!address)
    return false;
  for (const auto &cidr : cidrs)
    if (cidr.contains(*address))
      return true;
  return false;
}

const char *credential_text(CredentialStatus status)
{
  switch (status) {
    case CredentialStatus::none: return "no credential";
    case CredentialStatus::valid: return "valid";
    case CredentialStatus::invalid: return "invalid token";
    case CredentialStatus::expired: return "expired token";
    case CredentialStatus::not_yet_valid: return "token not yet valid";
    case CredentialStatus::wrong_audience: return "token for another audience";
    case CredentialStatus::wrong_issuer: return "token from an untrusted issuer";
    case CredentialStatus::revoked: return "revoked token";
  }
  return "unknown credential state";
}

}  // namespace

Request read_request(const RiskInput &input, std::uint64_t now_ns)
{
  const RequestIdentity &who = *input.identity;
  auto address = address_bytes(who.source);
  const std::uint64_t hash = address_hash(address);
  return {input,
          who,
          address,
          hash,
          subject_key(who.workload, hash),
          who.token_fingerprint.empty() ? 0 : hash_string(who.token_fingerprint, 0x70),
          !input.destination_name.empty() ? input.destination_name : input.service,
          now_ns};
}

void begin_decision(const CompiledPolicy &p, const Request &r, std::uint64_t id, std::uint64_t unix_ns,
                    Decision &d)
{
  const RiskInput &input = r.input;
  const RequestIdentity &who = r.who;
  d.id = id;
  d.subject = r.subject;
  d.time_unix_ns = unix_ns;
  d.service.assign(input.service);
  d.source_identity = who.workload;
  d.source_identity_name.assign(who.workload != 0 ? std::string_view(who.workload_name)
                                                  : std::string_view("world"));
  d.destination_identity = input.destination_identity;
  d.destination_identity_name.assign(input.destination_name);
  d.source_address.clear();
  net::append_endpoint(who.source, d.source_address);
  d.socket_cookie = input.socket_cookie;
  d.method.assign(input.method);
  policy::template_route(input.path, d.route);
  d.token_fingerprint = who.token_fingerprint;
  d.score = 0;
  d.contributions.clear();
  d.rule.clear();
  d.action = Action::allow;
  d.enforced = p.mode == policy::Mode::enforce;
  d.block_scope = p.block_scope;
  d.block_ttl_ms = 0;
  d.kernel_block = true;
  d.retry_after_s = 0;
  d.policy_version = p.version;
}

std::uint64_t block_key(BlockScope scope, const Request &r)
{
  switch (scope) {
    case BlockScope::ip: return r.address_hash | 1;
    case BlockScope::identity: return r.subject | 1;
    case BlockScope::pair: return mix64(r.subject ^ hash_string(r.destination, 0xde)) | 1;
    case BlockScope::connection: return mix64(r.input.socket_cookie ^ 0xc0) | 1;
  }
  return 0;
}

void add_contribution(Decision &d, const char *signal, int points, std::string evidence)
{
  if (points <= 0)
    return;
  d.score += points;
  d.contributions.push_back({signal, points, std::move(evidence)});
}

bool deny_by_list(const CompiledPolicy &p, const Request &r, Decision &d)
{
  const std::string_view name = d.source_identity_name;
  const bool denied_identity = p.deny_identities.count(name) > 0;  // "world": every unknown peer
  if (!denied_identity && !in_cidrs(p.deny_cidrs, r.address))
    return false;
  d.rule = "denylist";
  d.score = 100;
  d.contributions.push_back({"denylist", 100,
                             denied_identity
                                 ? fmt::format("identity {} is on lists.deny", name)
                                 : fmt::format("source {} is in lists.deny.cidrs", d.source_address)});
  d.action = Action::block;
  // Unknown peers have no identity the kernel could block; their address is what they are.
  d.block_scope = denied_identity && r.who.workload != 0 ? BlockScope::identity : BlockScope::ip;
  d.block_ttl_ms = p.block_ttl_ms;
  return true;
}

void score_watchlist(const CompiledPolicy &p, const Request &r, Decision &d)
{
  if (!p.watchlist.active())
    return;
  if (p.watch_identities.count(d.source_identity_name))
    add_contribution(d, "watchlist", p.watchlist.weight,
                     fmt::format("identity {} is on lists.watch", d.source_identity_name));
  else if (in_cidrs(p.watch_cidrs, r.address))
    add_contribution(d, "watchlist", p.watchlist.weight,
                     fmt::format("source {} is in lists.watch.cidrs", d.source_address));
}

const CompiledRule *first_rule(const CompiledPolicy &p, const Request &r, std::string_view caller,
                               std::string_view route)
{
  const RiskInput &input = r.input;
  for (const auto &rule : p.rules) {
    if (!rule.from.empty() && !rule.from.count(caller))
      continue;
    if (!rule.to.empty() && !rule.to.count(r.destination) && !rule.to.count(input.service))
      continue;
    if (!rule.routes.empty() &&
        std::none_of(rule.routes.begin(), rule.routes.end(),
                     [&](const auto &pattern) { return pattern.matches(input.method, route); }))
      continue;
    return &rule;
  }
  return nullptr;
}

bool apply_rule(const CompiledPolicy &p, const CompiledRule &rule, const Request &r, Decision &d)
{
  d.rule = rule.name;
  d.enforced = rule.mode == policy::Mode::enforce;
  if (rule.allow)
    return false;
  d.score = 100;
  d.contributions.push_back({"rule", 100,
                             fmt::format("rule {} denies {} -> {} {} {}", rule.name, d.source_identity_name,
                                         r.destination, r.input.method, d.route)});
  d.action = Action::block;
  // A rule limited to some routes answers those requests; a whole-pair rule closes the pair.
  d.block_scope = BlockScope::pair;
  d.kernel_block = rule.routes.empty();
  d.block_ttl_ms = p.block_ttl_ms;
  return true;
}

CredentialCheck check_credential(const CompiledPolicy &p, const RiskInput &input)
{
  const auto it = p.services.find(input.service);
  const CompiledService *service = it == p.services.end() ? nullptr : &it->second;
  const CredentialStatus status = input.identity->credential;
  return {service, status != CredentialStatus::valid &&
                       (status != CredentialStatus::none || (service && service->jwt_required))};
}

void score_credential(const CompiledPolicy &p, const Request &r, const CredentialCheck &c, Decision &d)
{
  const RequestIdentity &who = r.who;
  if (c.failed && p.credential.active())
    add_contribution(d, "credential", p.credential.weight,
                     who.credential == CredentialStatus::none
                         ? fmt::format("no credential; service {} requires a JWT", r.input.service)
                         : fmt::format("{}{}{}", credential_text(who.credential),
                                       who.failure_reason.empty() ? "" : ": ", who.failure_reason));
  if (who.binding == BindingVerdict::violation && p.binding.active()) {
    std::string bound;
    if (c.service)
      for (const auto &binding : c.service->bindings)
        if (binding.subject == who.subject || binding.subject == who.client_id)
          bound = fmt::format(" (bound to {})", fmt::join(binding.identities, ", "));
    add_contribution(
        d, "binding", p.binding.weight,
        fmt::format("token of {}{} presented by {}", who.subject.empty() ? who.client_id : who.subject, bound,
                    d.source_identity_name));
  }
}

void score(const CompiledPolicy &p, const Request &r, const Findings &f, const CredentialCheck &c,
           const IdentityNames *names, Decision &d)
{
  score_credential(p, r, c, d);
  score_roaming(p.roaming, f.roaming, names, d);
  score_rate(p.rate, f.rate, f.token_rate, d);
  score_novelty(p.novelty, f.novelty, f.failures, r, d);
  score_failures(p.failures, f.failures, d);
  score_payload(p.payload, f.payload, r, d);
  score_health(p.health, r, d);
  score_watchlist(p, r, d);
  d.score = std::min(d.score, 100);
}

void continue_block(const ActiveBlock &block, Decision &d)
{
  d.action = Action::block;
  d.rule = "active-block";
  d.block_ttl_ms = block.remaining_ms;
}

Action band(const CompiledPolicy &p, int score, bool credential_failed)
{
  if (score >= p.block_at)
    return Action::block;
  if (score >= p.limit_at)
    return Action::limit;
  if (score >= p.challenge_at || credential_failed)
    return Action::challenge;
  return Action::allow;
}

void admit_limited(const CompiledPolicy &p, SubjectState &s, std::uint64_t now, bool credential_failed,
                   Decision &d)
{
  if (s.bucket_tokens < 0)
    s.bucket_tokens = p.limit_burst;
  else
    s.bucket_tokens = std::min(p.limit_burst, s.bucket_tokens + static_cast<double>(now - s.bucket_ns) /
                                                                    kSecondNs * p.limit_rate_per_s);
  s.bucket_ns = now;
  if (s.bucket_tokens >= 1) {
    s.bucket_tokens -= 1;
    d.action = credential_failed ? Action::challenge : Action::allow;
  } else {
    const double wait_s = std::ceil((1 - s.bucket_tokens) / p.limit_rate_per_s);
    d.retry_after_s = std::max(p.retry_after_s, static_cast<std::uint32_t>(wait_s));
  }
}

void escalate_block(const CompiledPolicy &p, SubjectState &s, std::uint64_t now, std::uint64_t key,
                    Decision &d)
{
  const double ttl = static_cast<double>(p.block_ttl_ms) * std::pow(p.escalate_factor, s.offenses);
  d.block_ttl_ms = static_cast<std::uint64_t>(std::min(ttl, static_cast<double>(p.block_max_ttl_ms)));
  ++s.offenses;
  s.block_until_ns = now + d.block_ttl_ms * 1'000'000;
  s.block_key = key;
  s.block_decision = d.id;
}

int credential_points(const Decision &d)
{
  int points = 0;
  for (const auto &c : d.contributions)
    if (c.signal == "credential" || c.signal == "binding")
      points += c.points;
  return points;
}

void act(const CompiledPolicy &p, const Request &r, const ActiveBlock &block, bool credential_failed,
         int judged, StateTables &state, Decision &d)
{
  if (block.active) {
    continue_block(block, d);
    return;
  }
  d.action = band(p, judged, credential_failed);
  if (d.action != Action::limit && d.action != Action::block)
    return;
  // The third lock of a request, on the rare limit and block paths only.
  const std::uint64_t key = block_key(p.block_scope, r);
  state.subjects.with(r.subject, r.now, [&](SubjectState &s, bool) {
    if (d.action == Action::limit)
      admit_limited(p, s, r.now, credential_failed, d);
    else
      escalate_block(p, s, r.now, key, d);
  });
}

}  // namespace riskgate::risk
