// Engine::evaluate runs the stages of stages.h in the order docs/policy.md ("How a request is
// decided") gives:
//   1. lists.deny (identity, source CIDR)                -> block
//   2. explicit rules, first match                       -> deny: block; allow: allow (still learned)
//   3. signals, each learning from the request as it scores it; an active block of this subject
//      -> block again for the rest of its TTL
//   4. score = sum of contributions, capped at 100; thresholds -> challenge / limit / block;
//      a failed or missing required credential is at least a challenge.
// Per request the hot path takes two shard locks (subject, token) and a third only on the rare
// limit/block path; no lock is global.
#include <chrono>
#include <ctime>

#include <riskgate/risk/engine.h>

#include "compiled.h"
#include "stages.h"
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

namespace {

std::atomic<std::uint64_t> engine_instances{0};

// The stages after the request's facts: each returns early once the decision is made.
void decide(const CompiledPolicy &p, const Request &r, StateTables &state, const IdentityNames *names,
            Decision &d)
{
  if (deny_by_list(p, r, d))
    return;
  const CompiledRule *rule = first_rule(p, r, d.source_identity_name, d.route);
  if (rule && apply_rule(p, *rule, r, d))
    return;
  const Findings f = learn(p, r, d, state);
  const CredentialCheck credential = check_credential(p, r.input);
  score(p, r, f, credential, names, d);
  // An allow rule sets the behavioural signals aside (they are scored for the record) and grants
  // nothing more: active blocks, the Service's JWT requirement and token bindings still apply.
  act(p, r, f.block, credential.failed, rule ? credential_points(d) : d.score, state, d);
}

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
  const auto tokens = state_->tokens.totals();
  const auto subjects = state_->subjects.totals();
  EngineStats s{.unenforced = unenforced_.load(std::memory_order_relaxed),
                .tracked_tokens = tokens.size,
                .tracked_subjects = subjects.size,
                .evicted_tokens = tokens.evicted,
                .evicted_subjects = subjects.evicted,
                .expired_tokens = tokens.expired,
                .expired_subjects = subjects.expired,
                .state_bytes = tokens.bytes + subjects.bytes,
                .reloads_ok = reloads_ok_.load(std::memory_order_relaxed),
                .reloads_failed = reloads_failed_.load(std::memory_order_relaxed),
                .policy_version = policy_version()};
  for (int i = 0; i < 4; ++i) s.decisions[i] = decisions_[i].load(std::memory_order_relaxed);
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
  const Request r = read_request(input, clock_.monotonic_ns());
  state_->subjects.prefetch(r.subject);
  if (r.token)
    state_->tokens.prefetch(r.token);
  begin_decision(p, r, next_id_.fetch_add(1, std::memory_order_relaxed), clock_.unix_ns(), d);
  decide(p, r, *state_, options_.names, d);
  decisions_[static_cast<int>(d.action)].fetch_add(1, std::memory_order_relaxed);
  if (!d.enforced)
    unenforced_.fetch_add(1, std::memory_order_relaxed);
  d.evaluation_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started)
          .count());
}

void Engine::observe(const Decision &decision, const ExchangeResult &result)
{
  const CompiledPolicy &p = snapshot();
  const std::uint64_t now = clock_.monotonic_ns();
  // Only exchanges that reached the upstream say something about the caller's behaviour there; the
  // engine's own 401/403/429 are already in the decision that caused them. In observe mode the
  // exchanges the engine would have answered are skipped too, so that observe learns exactly what
  // enforce would and logs the same decisions.
  if (decision.action != Action::allow)
    return;
  state_->subjects.with(decision.subject, now, [&](SubjectState &s, bool created) {
    if (created)
      s.first_ns = now;
    learn_exchange(p, result, s, now);
  });
}

}  // namespace riskgate::risk
