// The stages of Engine::evaluate, in the order it runs them (docs/policy.md, "How a request is
// decided"). Each takes the compiled policy and the request and writes its part of the Decision.
// Only learn() and act() take locks: learn the subject's shard lock, then the token's, never both;
// act the subject's again on the rare limit and block paths. The per-signal functions they call
// work on the record under its lock and copy out findings, so that evidence is formatted (only for
// what fires) outside the locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <riskgate/common/decision.h>
#include <riskgate/common/net.h>
#include <riskgate/risk/engine.h>

#include "compiled.h"
#include "state.h"

namespace riskgate::risk {

// Everything the engine learns, per subject and per token.
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

// One request as the stages see it: the input and the keys derived from it once.
struct Request {
  const RiskInput &input;
  const RequestIdentity &who;
  std::optional<net::MappedAddr> address;  // the source address, when it is an IP address
  std::uint64_t address_hash;
  std::uint64_t subject;         // key of the subject table
  std::uint64_t token;           // key of the token table; 0: no token
  std::string_view destination;  // the identity called (transparent mode), else the service
  std::uint64_t now;             // monotonic
};

Request read_request(const RiskInput &input, std::uint64_t now_ns);

// The decision's facts about the request, before any stage: allowed, nothing scored, enforced
// unless the policy observes.
void begin_decision(const CompiledPolicy &p, const Request &r, std::uint64_t id, std::uint64_t unix_ns,
                    Decision &d);

// What a block of `scope` keys on in the subject record, so that an active block is found again
// only by requests within its scope.
std::uint64_t block_key(BlockScope scope, const Request &r);

// Adds a signal's points and evidence to the score (nothing for no points).
void add_contribution(Decision &d, const char *signal, int points, std::string evidence);

// --- Lists: lists.deny blocks before anything else; lists.watch is scored with the signals.
// True when the request is denied, d then holds the block.
bool deny_by_list(const CompiledPolicy &p, const Request &r, Decision &d);
void score_watchlist(const CompiledPolicy &p, const Request &r, Decision &d);

// --- Rules: the first explicit rule matching the caller, destination and route (nullptr: none).
const CompiledRule *first_rule(const CompiledPolicy &p, const Request &r, std::string_view caller,
                               std::string_view route);
// The matched rule is the decision's: its name and mode. A deny rule blocks (true).
bool apply_rule(const CompiledPolicy &p, const CompiledRule &rule, const Request &r, Decision &d);

// --- Credential: the token's verdict and its binding, from the identity resolver.
struct CredentialCheck {
  const CompiledService *service = nullptr;  // the policy's Service called, if it has one
  bool failed = false;                       // invalid, or missing where the service requires one
};
CredentialCheck check_credential(const CompiledPolicy &p, const RiskInput &input);
void score_credential(const CompiledPolicy &p, const Request &r, const CredentialCheck &c, Decision &d);

// --- Signals: each learns from the request in its record as it scores it.
struct ActiveBlock {
  bool active = false;
  std::uint64_t remaining_ms = 0;
};
struct RateFinding {  // subject rate, and (identity, token) rate
  bool fired = false;
  std::uint32_t count = 0;  // requests this second
  float mean = 0;
  double z = 0;
};
struct NoveltyFinding {
  bool novel = false;
  double novel_in_window = 0;
  double novel_failures_in_window = 0;  // of the novel endpoints before this one
  double discovered_in_window = 0;      // while learning: first-seen endpoints in the scan window
};
struct FailureFinding {
  bool fired = false;
  double ratio = 0;
  double requests = 0;
};
struct PayloadFinding {
  bool fired = false;
  float usual = 0;  // ln(1 + usual body bytes)
};
struct RoamingFinding {  // the token's live origins
  unsigned identities = 0;
  unsigned addresses = 0;
  std::uint32_t ids[TokenState::kOrigins] = {};
};
// What the subject and token shards said, copied out so that scoring runs outside the locks.
struct Findings {
  ActiveBlock block;
  RateFinding rate;
  RateFinding token_rate;
  NoveltyFinding novelty;
  FailureFinding failures;
  PayloadFinding payload;
  RoamingFinding roaming;
};

ActiveBlock active_block(const SubjectState &s, BlockScope scope, const Request &r);
// Counts the request into `rate`; fires once past the warm-up counted from first_ns.
RateFinding learn_rate(const RateParams &params, RateStat &rate, std::uint64_t first_ns, std::uint64_t now);
// `endpoint`: the hash of service, method and route template; `decision`: the request's decision id.
NoveltyFinding learn_novelty(const NoveltyParams &params, SubjectState &s, std::uint64_t endpoint,
                             std::uint64_t decision, std::uint64_t now);
FailureFinding read_failures(const FailureParams &params, SubjectState &s, std::uint64_t now);
PayloadFinding read_payload(const PayloadParams &params, const SubjectState &s,
                            std::optional<std::uint64_t> body_bytes);
// The token's origin for (identity, address), taking the oldest slot for a new one; origins idle
// for longer than `window_ns` are forgotten first.
TokenState::Origin &token_origin(TokenState &t, std::uint32_t identity, std::uint32_t address,
                                 std::uint64_t window_ns, std::uint64_t now);
RoamingFinding count_origins(const TokenState &t);

// The signals' half under the subject's lock, then the token's (each lock in turn, never both).
// `d`: the decision begun for the request (its id and route template).
Findings learn(const CompiledPolicy &p, const Request &r, const Decision &d, StateTables &state);
// An exchange that reached the upstream: its status feeds the failure ratio (and, for the first call
// of a novel endpoint, the scan's failures), its body the payload baseline.
void learn_exchange(const CompiledPolicy &p, const ExchangeResult &result, SubjectState &s,
                    std::uint64_t now);

void score_roaming(const RoamingParams &params, const RoamingFinding &f, const IdentityNames *names,
                   Decision &d);
void score_rate(const RateParams &params, const RateFinding &subject, const RateFinding &token, Decision &d);
// The share of the scan weight a novel endpoint adds: 0 up to half a burst of evidence, where each
// novel endpoint in the window is one and each of their failures one more, rising to 1 at a burst.
double scan_share(const NoveltyParams &params, const NoveltyFinding &f);
void score_novelty(const NoveltyParams &params, const NoveltyFinding &f, const FailureFinding &failures,
                   const Request &r, Decision &d);
void score_failures(const FailureParams &params, const FailureFinding &f, Decision &d);
void score_payload(const PayloadParams &params, const PayloadFinding &f, const Request &r, Decision &d);
void score_health(const HealthParams &params, const Request &r, Decision &d);

// --- Score: every signal's contribution in a fixed order, the sum capped at 100.
void score(const CompiledPolicy &p, const Request &r, const Findings &f, const CredentialCheck &c,
           const IdentityNames *names, Decision &d);

// --- Action: the band of the score; the limit band's token bucket; block escalation. Observe mode
// changes no action: d.enforced (the policy's mode, or the matched rule's) says whether it is done.
// An active block of the subject blocks again for the rest of its TTL, whatever the score.
void continue_block(const ActiveBlock &block, Decision &d);
// A failed credential is at least a challenge.
Action band(const CompiledPolicy &p, int score, bool credential_failed);
// The limit band admits the subject at limit.ratePerSecond (bursts of limit.burst): d.action
// becomes allow (or challenge) when a token is left, else d.retry_after_s says when.
void admit_limited(const CompiledPolicy &p, SubjectState &s, std::uint64_t now, bool credential_failed,
                   Decision &d);
// Each new block of the same subject lasts escalate_factor times longer, up to block_max_ttl_ms;
// records the block under `key` (block_key) in the subject.
void escalate_block(const CompiledPolicy &p, SubjectState &s, std::uint64_t now, std::uint64_t key,
                    Decision &d);
// The points an allow rule does not set aside: the credential's and the binding's. A rule grants
// its caller the route, not a pass on the Service's JWT requirement or on a token's binding.
int credential_points(const Decision &d);
// The action of a scored request: continue_block, else band `judged` (the score, or for a request
// an allow rule admitted its credential_points), then the limit bucket or the escalation under the
// subject's lock.
void act(const CompiledPolicy &p, const Request &r, const ActiveBlock &block, bool credential_failed,
         int judged, StateTables &state, Decision &d);

}  // namespace riskgate::risk
