// Evaluation order (docs/policy.md, "How a request is decided"):
//   1. deny lists (identity, source CIDR)                -> block
//   2. explicit rules, first match                       -> deny: block; allow: allow (still learned)
//   3. signals, each learning from the request as it scores it; an active block of this subject
//      -> block again for the rest of its TTL
//   4. score = sum of contributions, capped at 100; thresholds -> challenge / limit / block;
//      a failed or missing required credential is at least a challenge.
// Per request the hot path takes two shard locks (subject, token) and a third only on the rare
// limit/block path; no lock is global.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include <riskgate/risk/engine.h>

#include "compiled.h"
#include <riskgate/common/duration.h>
#include <riskgate/policy/params.h>
#include <riskgate/policy/route.h>
#include "state.h"

namespace riskgate::risk {

std::uint64_t SystemClock::monotonic_ns() const
{
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t SystemClock::unix_ns() const
{
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::uint64_t>(ts.tv_nsec);
}

class StateTables {
 public:
  explicit StateTables(const EngineOptions &o)
      : subjects(o.max_subjects, o.shards, o.subject_idle_ms * 1'000'000),
        tokens(o.max_tokens, o.shards, o.token_idle_ms * 1'000'000)
  {
  }
  ShardedTable<SubjectState> subjects;
  ShardedTable<TokenState> tokens;
};

namespace {

constexpr std::uint64_t kSecondNs = 1'000'000'000;
constexpr std::uint64_t kSubjectAddressBit = 1ULL << 63;

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

using Address = net::MappedAddr;

std::uint64_t address_hash(const std::optional<Address> &address)
{
  return address ? hash_bytes(address->data(), address->size(), 0xad) : 0;
}

// Subjects are identities; unknown peers (identity 0) are told apart by source address.
std::uint64_t subject_key(IdentityId identity, std::uint64_t address_hash)
{
  return identity != 0 ? mix64(identity) & ~kSubjectAddressBit : address_hash | kSubjectAddressBit;
}

std::optional<Address> address_bytes(const sockaddr_storage &address)
{
  auto mapped = net::to_mapped(address);
  if (!mapped)
    return std::nullopt;
  return *mapped;
}

bool in_cidrs(const std::vector<net::MappedPrefix> &cidrs, const std::optional<Address> &address)
{
  if (!address)
    return false;
  for (const auto &cidr : cidrs)
    if (cidr.contains(*address))
      return true;
  return false;
}

// What the subject and token shards said, copied out so evidence is formatted outside the locks.
struct Findings {
  bool active_block = false;
  std::uint64_t block_remaining_ms = 0;
  std::uint64_t block_decision = 0;
  bool rate_fired = false;
  std::uint32_t rate_count = 0;
  float rate_mean = 0;
  double rate_z = 0;
  bool token_rate_fired = false;
  std::uint32_t token_rate_count = 0;
  float token_rate_mean = 0;
  bool novel = false;
  double novel_in_window = 0;
  double discovered_in_window = 0;  // while learning: first-seen endpoints in the scan window
  bool failures_fired = false;
  double failure_ratio = 0;
  double failure_requests = 0;
  bool payload_fired = false;
  float payload_usual = 0;
  unsigned roaming_identities = 0;
  unsigned roaming_addresses = 0;
  std::uint32_t roaming_ids[TokenState::kOrigins] = {};
};

double rate_z(const RateStat &rate)
{
  return rate.z();
}

std::atomic<std::uint64_t> engine_instances{0};

}  // namespace

Engine::Engine(const policy::PolicySet &policy, EngineOptions options)
    : options_(options),
      own_clock_(options.clock ? nullptr : std::make_unique<SystemClock>()),
      clock_(options.clock ? *options.clock : *own_clock_),
      policy_(compile(policy)),
      instance_(engine_instances.fetch_add(1, std::memory_order_relaxed) + 1),
      state_(std::make_unique<StateTables>(options_)),
      next_id_(clock_.unix_ns() / 1000)
{
}

Engine::~Engine() = default;

std::shared_ptr<const CompiledPolicy> Engine::current() const
{
  std::lock_guard lock(policy_mutex_);
  return policy_;
}

const CompiledPolicy &Engine::snapshot() const
{
  // The cached shared_ptr keeps the snapshot alive for the whole evaluation even if a reload
  // replaces it meanwhile; it is dropped at this thread's next evaluation.
  struct Cache {
    std::uint64_t instance = 0;
    std::uint64_t generation = 0;
    std::shared_ptr<const CompiledPolicy> policy;
  };
  thread_local Cache cache;
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  if (cache.instance != instance_ || cache.generation != generation || !cache.policy) {
    cache.policy = current();
    cache.instance = instance_;
    cache.generation = generation;
  }
  return *cache.policy;
}

void Engine::install(const policy::PolicySet &policy)
{
  std::shared_ptr<const CompiledPolicy> compiled = compile(policy);
  {
    std::lock_guard lock(policy_mutex_);
    policy_.swap(compiled);
  }
  // The old snapshot (now in `compiled`) is released here unless a thread still holds it.
  generation_.fetch_add(1, std::memory_order_release);
  reloads_ok_.fetch_add(1, std::memory_order_relaxed);
}

void Engine::reject(const std::vector<policy::Diagnostic> &diagnostics)
{
  reloads_failed_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(rejection_mutex_);
  rejection_ = diagnostics;
}

std::vector<policy::Diagnostic> Engine::last_rejection() const
{
  std::lock_guard lock(rejection_mutex_);
  return rejection_;
}

std::string Engine::policy_version() const
{
  return current()->version;
}

EngineStats Engine::stats() const
{
  EngineStats s;
  for (int i = 0; i < 4; ++i) s.decisions[i] = decisions_[i].load(std::memory_order_relaxed);
  s.unenforced = unenforced_.load(std::memory_order_relaxed);
  const auto tokens = state_->tokens.totals();
  const auto subjects = state_->subjects.totals();
  s.tracked_tokens = tokens.size;
  s.tracked_subjects = subjects.size;
  s.evicted_tokens = tokens.evicted;
  s.evicted_subjects = subjects.evicted;
  s.expired_tokens = tokens.expired;
  s.expired_subjects = subjects.expired;
  s.state_bytes = tokens.bytes + subjects.bytes;
  s.reloads_ok = reloads_ok_.load(std::memory_order_relaxed);
  s.reloads_failed = reloads_failed_.load(std::memory_order_relaxed);
  s.policy_version = policy_version();
  return s;
}

Decision Engine::evaluate(const RiskInput &input)
{
  Decision decision;
  evaluate(input, decision);
  return decision;
}

void Engine::evaluate(const RiskInput &input, Decision &d)
{
  const auto started = std::chrono::steady_clock::now();
  const CompiledPolicy &p = snapshot();
  const RequestIdentity &who = *input.identity;
  const std::uint64_t now = clock_.monotonic_ns();

  const auto address = address_bytes(who.source);
  const std::uint64_t addr_hash = address_hash(address);
  const std::uint64_t subject = subject_key(who.workload, addr_hash);
  const std::uint64_t token = who.token_fingerprint.empty() ? 0 : hash_string(who.token_fingerprint, 0x70);
  state_->subjects.prefetch(subject);
  if (token)
    state_->tokens.prefetch(token);

  d.id = next_id_.fetch_add(1, std::memory_order_relaxed);
  d.subject = subject;
  d.time_unix_ns = clock_.unix_ns();
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
  template_route(input.path, d.route);
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

  const std::string_view name = d.source_identity_name;

  auto finish = [&] {
    d.score = std::min(d.score, 100);
    decisions_[static_cast<int>(d.action)].fetch_add(1, std::memory_order_relaxed);
    if (!d.enforced)
      unenforced_.fetch_add(1, std::memory_order_relaxed);
    d.evaluation_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started)
            .count());
  };

  // 1. Deny lists.
  const bool denied_identity = p.deny_identities.count(name) > 0;  // "world": every unknown peer
  if (denied_identity || in_cidrs(p.deny_cidrs, address)) {
    d.rule = "denylist";
    d.score = 100;
    d.contributions.push_back({"denylist", 100,
                               denied_identity
                                   ? fmt::format("identity {} is on lists.deny", name)
                                   : fmt::format("source {} is in lists.deny.cidrs", d.source_address)});
    d.action = Action::block;
    // Unknown peers have no identity the kernel could block; their address is what they are.
    d.block_scope = denied_identity && who.workload != 0 ? BlockScope::identity : BlockScope::ip;
    d.block_ttl_ms = p.block_ttl_ms;
    finish();
    return;
  }

  // 2. Explicit rules.
  const std::string_view destination =
      !input.destination_name.empty() ? input.destination_name : input.service;
  const CompiledRule *allowed_by = nullptr;
  for (const auto &rule : p.rules) {
    if (!rule.from.empty() && !rule.from.count(name))
      continue;
    if (!rule.to.empty() && !rule.to.count(destination) && !rule.to.count(input.service))
      continue;
    if (!rule.routes.empty()) {
      bool any = false;
      for (const auto &route : rule.routes) any = any || route.matches(input.method, d.route);
      if (!any)
        continue;
    }
    d.rule = rule.name;
    d.enforced = rule.mode == policy::Mode::enforce;
    if (rule.allow) {
      allowed_by = &rule;
      break;
    }
    d.score = 100;
    d.contributions.push_back(
        {"rule", 100,
         fmt::format("rule {} denies {} -> {} {} {}", rule.name, name, destination, input.method, d.route)});
    d.action = Action::block;
    // A rule limited to some routes answers those requests; a whole-pair rule closes the pair.
    d.block_scope = BlockScope::pair;
    d.kernel_block = rule.routes.empty();
    d.block_ttl_ms = p.block_ttl_ms;
    finish();
    return;
  }

  // 3. Signals.
  Findings f;
  auto block_key = [&](BlockScope scope) -> std::uint64_t {
    switch (scope) {
      case BlockScope::ip: return addr_hash | 1;
      case BlockScope::identity: return subject | 1;
      case BlockScope::pair: return mix64(subject ^ hash_string(destination, 0xde)) | 1;
      case BlockScope::connection: return mix64(input.socket_cookie ^ 0xc0) | 1;
    }
    return 0;
  };
  const std::uint64_t endpoint =
      hash_string(d.route, hash_string(input.method, hash_string(input.service, 0xe9)));
  state_->subjects.with(subject, now, [&](SubjectState &s, bool created) {
    if (created)
      s.first_ns = now;
    if (s.block_until_ns > now && s.block_key != 0 && s.block_key == block_key(p.block_scope)) {
      f.active_block = true;
      f.block_remaining_ms = (s.block_until_ns - now + 999'999) / 1'000'000;
      f.block_decision = s.block_decision;
    }
    if (p.rate.s.active()) {
      s.rate.add(now, p.rate.alpha);
      if (now - s.first_ns >= p.rate.warmup_ns) {
        f.rate_z = rate_z(s.rate);
        f.rate_fired = s.rate.count >= p.rate.min_rate && f.rate_z >= p.rate.sigma;
        f.rate_count = s.rate.count;
        f.rate_mean = s.rate.mean;
      }
    }
    if (p.novelty.s.active()) {
      const auto seen = s.endpoints.insert(endpoint);
      if (seen == EndpointSet::Seen::added && now - s.first_ns >= p.novelty.learn_ns) {
        f.novel = true;
        s.novel.add(now, p.novelty.scan_window_ns);
        f.novel_in_window = s.novel.estimate(now, p.novelty.scan_window_ns);
      } else if (seen == EndpointSet::Seen::added) {
        // Nothing is novel before the baseline exists, but a newcomer sweeping many endpoints is
        // still a scan; scored below only together with the failure signal.
        s.discovered.add(now, p.novelty.scan_window_ns);
        f.discovered_in_window = s.discovered.estimate(now, p.novelty.scan_window_ns);
      }
    }
    if (p.failures.s.active()) {
      f.failure_requests = s.requests.estimate(now, p.failures.window_ns);
      const double failed = s.failures.estimate(now, p.failures.window_ns);
      f.failure_ratio = f.failure_requests > 0 ? failed / f.failure_requests : 0;
      f.failures_fired = f.failure_requests >= p.failures.min_requests && f.failure_ratio >= p.failures.ratio;
    }
    if (p.payload.s.active() && input.body_bytes && s.payload_samples >= p.payload.warmup) {
      const double x = std::log1p(static_cast<double>(*input.body_bytes));
      const double sd = std::max(std::sqrt(static_cast<double>(s.payload_var)), 0.5);
      f.payload_fired = (x - s.payload_mean) / sd >= p.payload.sigma;
      f.payload_usual = s.payload_mean;
    }
  });

  if (token && (p.roaming.s.active() || p.rate.s.active())) {
    state_->tokens.with(token, now, [&](TokenState &t, bool) {
      const auto address32 = static_cast<std::uint32_t>(addr_hash);
      TokenState::Origin *slot = nullptr;
      TokenState::Origin *oldest = &t.origins[0];
      for (auto &origin : t.origins) {
        if (origin.last_ns != 0 && now - origin.last_ns > p.roaming.window_ns)
          origin = {};
        if (origin.last_ns != 0 && origin.identity == who.workload && origin.address == address32)
          slot = &origin;
        if (origin.last_ns < oldest->last_ns)
          oldest = &origin;
      }
      if (!slot) {
        slot = oldest;
        *slot = {who.workload, address32, 0, now, {}};
      }
      slot->last_ns = now;
      if (p.rate.s.active()) {
        slot->rate.add(now, p.rate.alpha);
        if (now - slot->first_ns >= p.rate.warmup_ns && slot->rate.count >= p.rate.min_rate &&
            rate_z(slot->rate) >= p.rate.sigma) {
          f.token_rate_fired = true;
          f.token_rate_count = slot->rate.count;
          f.token_rate_mean = slot->rate.mean;
        }
      }
      if (!p.roaming.s.active())
        return;
      std::uint32_t addresses[TokenState::kOrigins];
      for (const auto &origin : t.origins) {
        if (origin.last_ns == 0)
          continue;
        bool known = false;
        for (unsigned i = 0; i < f.roaming_identities; ++i)
          known = known || f.roaming_ids[i] == origin.identity;
        if (!known)
          f.roaming_ids[f.roaming_identities++] = origin.identity;
        known = false;
        for (unsigned i = 0; i < f.roaming_addresses; ++i) known = known || addresses[i] == origin.address;
        if (!known)
          addresses[f.roaming_addresses++] = origin.address;
      }
    });
  }

  // 4. Score.
  const auto *service = [&]() -> const CompiledService * {
    const auto it = p.services.find(input.service);
    return it == p.services.end() ? nullptr : &it->second;
  }();
  const bool credential_failed =
      who.credential != CredentialStatus::valid &&
      (who.credential != CredentialStatus::none || (service && service->jwt_required));
  auto add = [&](const char *signal, int points, std::string evidence) {
    if (points <= 0)
      return;
    d.score += points;
    d.contributions.push_back({signal, points, std::move(evidence)});
  };
  if (credential_failed && p.credential.active())
    add("credential", p.credential.weight,
        who.credential == CredentialStatus::none
            ? fmt::format("no credential; service {} requires a JWT", input.service)
            : fmt::format("{}{}{}", credential_text(who.credential), who.failure_reason.empty() ? "" : ": ",
                          who.failure_reason));
  if (who.binding == BindingVerdict::violation && p.binding.active()) {
    std::string bound;
    if (service)
      for (const auto &binding : service->bindings)
        if (binding.subject == who.subject || binding.subject == who.client_id)
          bound = fmt::format(" (bound to {})", fmt::join(binding.identities, ", "));
    add("binding", p.binding.weight,
        fmt::format("token of {}{} presented by {}", who.subject.empty() ? who.client_id : who.subject, bound,
                    name));
  }
  if (f.roaming_identities > 1 && p.roaming.s.active()) {
    std::string origins;
    for (unsigned i = 0; i < f.roaming_identities; ++i) {
      const std::string origin = options_.names ? options_.names->name_of(f.roaming_ids[i]) : std::string();
      origins += fmt::format("{}{}", i == 0 ? "" : ", ",
                             origin.empty() ? fmt::format("id {}", f.roaming_ids[i]) : origin);
    }
    add("roaming", p.roaming.s.weight,
        fmt::format("token seen from {} workload identities ({}) within {}; now from {}",
                    f.roaming_identities, origins, format_duration_ms(p.roaming.window_ns / 1'000'000),
                    name));
  } else if (f.roaming_addresses > p.roaming.max_addresses && p.roaming.s.active()) {
    add("roaming", p.roaming.s.weight / 2,
        fmt::format("token seen from {} source addresses within {}", f.roaming_addresses,
                    format_duration_ms(p.roaming.window_ns / 1'000'000)));
  }
  if (f.rate_fired)
    add("rate", p.rate.s.weight,
        fmt::format("{} requests this second from {}, usual {:.1f}/s (z={:.1f})", f.rate_count, name,
                    f.rate_mean, f.rate_z));
  else if (f.token_rate_fired)
    add("rate", p.rate.s.weight,
        fmt::format("{} requests this second with this token from {}, usual {:.1f}/s", f.token_rate_count,
                    name, f.token_rate_mean));
  if (f.novel) {
    int points = p.novelty.s.weight;
    std::string evidence =
        fmt::format("{} never called {} {} {} before", name, input.service, input.method, d.route);
    if (f.novel_in_window >= 2) {
      points += static_cast<int>(
          std::lround(p.novelty.scan_weight * std::min(1.0, f.novel_in_window / p.novelty.scan_burst)));
      evidence += fmt::format("; {:.0f} new endpoints within {} (scanning)", f.novel_in_window,
                              format_duration_ms(p.novelty.scan_window_ns / 1'000'000));
    }
    add("novelty", points, std::move(evidence));
  } else if (f.failures_fired && f.discovered_in_window >= p.novelty.scan_burst) {
    add("novelty", p.novelty.scan_weight,
        fmt::format(
            "{} swept {:.0f} endpoints within {} while still learning, most of them failing (scanning)", name,
            f.discovered_in_window, format_duration_ms(p.novelty.scan_window_ns / 1'000'000)));
  }
  if (f.failures_fired)
    add("failures", p.failures.s.weight,
        fmt::format("{:.0f}% of {}'s last {:.0f} requests ended 401/403/404", f.failure_ratio * 100, name,
                    f.failure_requests));
  if (f.payload_fired)
    add("payload", p.payload.s.weight,
        fmt::format("body {} B, usual about {:.0f} B", *input.body_bytes, std::expm1(f.payload_usual)));
  if (input.upstream && p.health.s.active()) {
    const UpstreamHealth &h = *input.upstream;
    if (!h.healthy || h.error_ratio >= p.health.error_ratio || h.latency_ewma_ms >= p.health.latency_ms)
      add("health", p.health.s.weight,
          fmt::format("upstream {} degraded: {:.0f}% errors, {:.0f} ms latency{}", h.name,
                      h.error_ratio * 100, h.latency_ewma_ms, h.healthy ? "" : ", marked unhealthy"));
  }
  if (p.watchlist.active()) {
    if (p.watch_identities.count(name))
      add("watchlist", p.watchlist.weight, fmt::format("identity {} is on lists.watch", name));
    else if (in_cidrs(p.watch_cidrs, address))
      add("watchlist", p.watchlist.weight,
          fmt::format("source {} is in lists.watch.cidrs", d.source_address));
  }
  d.score = std::min(d.score, 100);

  if (allowed_by) {
    finish();
    return;
  }
  if (f.active_block) {
    d.action = Action::block;
    d.rule = "active-block";
    d.block_ttl_ms = f.block_remaining_ms;
    finish();
    return;
  }

  if (d.score >= p.block_at) {
    d.action = Action::block;
  } else if (d.score >= p.limit_at) {
    d.action = Action::limit;
  } else if (d.score >= p.challenge_at || credential_failed) {
    d.action = Action::challenge;
  }

  if (d.action == Action::limit || d.action == Action::block) {
    const std::uint64_t key = block_key(p.block_scope);
    state_->subjects.with(subject, now, [&](SubjectState &s, bool) {
      if (d.action == Action::limit) {
        // The limit band admits the subject at limit.ratePerSecond (bursts of limit.burst).
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
        return;
      }
      // Escalation: each new block of the same subject lasts factor times longer, up to the max.
      const double ttl = static_cast<double>(p.block_ttl_ms) * std::pow(p.escalate_factor, s.offenses);
      d.block_ttl_ms = static_cast<std::uint64_t>(std::min(ttl, static_cast<double>(p.block_max_ttl_ms)));
      ++s.offenses;
      s.block_until_ns = now + d.block_ttl_ms * 1'000'000;
      s.block_key = key;
      s.block_decision = d.id;
    });
  }
  finish();
}

void Engine::observe(const Decision &decision, const ExchangeResult &result)
{
  const CompiledPolicy &p = snapshot();
  const std::uint64_t now = clock_.monotonic_ns();
  const std::uint64_t subject = decision.subject;
  // Only exchanges that reached the upstream say something about the caller's behaviour there; the
  // engine's own 401/403/429 are already in the decision that caused them. In observe mode the
  // exchanges the engine would have answered are skipped too, so that observe learns exactly what
  // enforce would and logs the same decisions.
  if (decision.action != Action::allow)
    return;
  const bool failed = result.status == 401 || result.status == 403 || result.status == 404;
  state_->subjects.with(subject, now, [&](SubjectState &s, bool created) {
    if (created)
      s.first_ns = now;
    s.requests.add(now, p.failures.window_ns);
    if (failed)
      s.failures.add(now, p.failures.window_ns);
    if (p.payload.s.active()) {
      const auto x = static_cast<float>(std::log1p(static_cast<double>(result.request_body_bytes)));
      if (s.payload_samples == 0) {
        s.payload_mean = x;
      } else {
        constexpr float kAlpha = 0.05f;
        const float delta = x - s.payload_mean;
        s.payload_mean += kAlpha * delta;
        s.payload_var = (1 - kAlpha) * (s.payload_var + kAlpha * delta * delta);
      }
      ++s.payload_samples;
    }
  });
}

}  // namespace riskgate::risk
