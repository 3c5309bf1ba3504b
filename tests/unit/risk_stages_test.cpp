// Each stage of Engine::evaluate on its own (userspace/risk/stages.h): the request's keys, lists,
// rules, credential, every signal's learning and scoring, the score and the action. The engine-level
// behaviour of the same rules is in risk_signals_test and risk_scenario_test.
#include <doctest/doctest.h>

#include <string>

#include "risk/stages.h"
#include "support/risk_traffic.h"

using namespace riskgate;
using namespace riskgate::risk;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr std::uint64_t kStart = 1000 * kSecond;

// The compiled default policy with `spec` (RiskPolicy spec lines) and `documents` (other kinds).
CompiledPolicy compiled(const std::string &spec = "", const std::string &documents = "")
{
  const std::string yaml = documents +
                           "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: stages}\n"
                           "spec:\n  mode: enforce\n" +
                           spec;
  return *compile(test::policy_from(yaml));
}

std::string identities(std::initializer_list<const char *> names)
{
  std::string out;
  for (const char *name : names)
    out += std::string("apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: ") + name +
           "}\nspec: {}\n---\n";
  return out;
}

// A request of `who` and the decision begun for it, as evaluate has them when the stages run.
struct Case {
  Case(const RequestIdentity &caller, std::string_view service, std::string_view method,
       std::string_view path, const CompiledPolicy &p, std::uint64_t now = kStart)
      : who(caller), input(test::request_input(who, service, method, path)), r(read_request(input, now))
  {
    begin_decision(p, r, 1, 0, d);
  }
  RequestIdentity who;
  RiskInput input;
  Request r;
  Decision d;
};

const auto kFrontend = test::workload(7, "frontend", "10.0.1.5", "tok-frontend");
const auto kStranger = test::workload(0, "", "198.51.100.7");

}  // namespace

TEST_CASE("keys: a subject is its identity, an unknown peer its address; a block key its scope")
{
  const CompiledPolicy p = compiled();
  auto moved = kFrontend;
  moved.source = test::ipv4("10.0.1.6");
  const Case here(kFrontend, "orders", "GET", "/", p);
  const Case there(moved, "orders", "GET", "/", p);
  CHECK(here.r.subject == there.r.subject);
  CHECK(here.r.address_hash != there.r.address_hash);
  CHECK(here.r.token != 0);
  CHECK(here.r.destination == "orders");

  auto other_stranger = kStranger;
  other_stranger.source = test::ipv4("198.51.100.8");
  const Case a(kStranger, "orders", "GET", "/", p);
  const Case b(other_stranger, "orders", "GET", "/", p);
  CHECK(a.r.subject != b.r.subject);
  CHECK(a.r.token == 0);
  CHECK(a.d.source_identity_name == "world");

  CHECK(block_key(BlockScope::identity, here.r) == block_key(BlockScope::identity, there.r));
  CHECK(block_key(BlockScope::ip, here.r) != block_key(BlockScope::ip, there.r));
  Case called(kFrontend, "orders", "GET", "/", p);
  called.input.destination_name = "payments";
  const Request to_payments = read_request(called.input, kStart);
  CHECK(to_payments.destination == "payments");
  CHECK(block_key(BlockScope::pair, here.r) != block_key(BlockScope::pair, to_payments));
  called.input.socket_cookie = 42;
  CHECK(block_key(BlockScope::connection, here.r) !=
        block_key(BlockScope::connection, read_request(called.input, kStart)));
}

TEST_CASE("lists: deny blocks an identity by identity and an address by address; watch adds its weight")
{
  const CompiledPolicy p = compiled(
      "  signals: {watchlist: {weight: 20}}\n"
      "  lists:\n    deny: {identities: [batch], cidrs: [198.51.100.0/24]}\n"
      "    watch: {identities: [frontend], cidrs: ['10.0.9.0/24']}\n",
      identities({"batch", "frontend"}));
  Case batch(test::workload(9, "batch", "10.0.2.9"), "orders", "GET", "/", p);
  REQUIRE(deny_by_list(p, batch.r, batch.d));
  CHECK(batch.d.action == Action::block);
  CHECK(batch.d.block_scope == BlockScope::identity);
  CHECK(batch.d.block_ttl_ms == p.block_ttl_ms);
  CHECK(batch.d.contributions.at(0).evidence == "identity batch is on lists.deny");

  Case stranger(kStranger, "orders", "GET", "/", p);
  REQUIRE(deny_by_list(p, stranger.r, stranger.d));
  CHECK(stranger.d.block_scope == BlockScope::ip);
  CHECK(stranger.d.contributions.at(0).evidence == "source 198.51.100.7:40000 is in lists.deny.cidrs");

  Case frontend(kFrontend, "orders", "GET", "/", p);
  CHECK_FALSE(deny_by_list(p, frontend.r, frontend.d));
  CHECK(frontend.d.action == Action::allow);
  CHECK(frontend.d.contributions.empty());
  score_watchlist(p, frontend.r, frontend.d);
  CHECK(frontend.d.score == 20);
  CHECK(frontend.d.contributions.at(0).evidence == "identity frontend is on lists.watch");

  Case watched(test::workload(12, "", "10.0.9.3"), "orders", "GET", "/", p);
  score_watchlist(p, watched.r, watched.d);
  CHECK(watched.d.contributions.at(0).evidence == "source 10.0.9.3:40000 is in lists.watch.cidrs");

  CompiledPolicy off = p;
  off.watchlist.on = false;
  Case unscored(kFrontend, "orders", "GET", "/", off);
  score_watchlist(off, unscored.r, unscored.d);
  CHECK(unscored.d.score == 0);
}

TEST_CASE("rules: the first match by caller, destination and route decides; allow and observe as written")
{
  const CompiledPolicy p = compiled(
      "  rules:\n"
      "    - {name: probes, mode: observe, allow: {from: [monitoring], routes: ['GET /healthz']}}\n"
      "    - {name: no-deletes, deny: {from: ['*'], to: [orders], routes: ['DELETE /orders/{id}']}}\n"
      "    - {name: no-payments, deny: {from: [frontend], to: [payments]}}\n",
      identities({"monitoring", "frontend"}) +
          "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: payments}\nspec: {listen: ':1', "
          "upstream: 'h:2'}\n---\napiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\n"
          "spec: {listen: ':3', upstream: 'h:4'}\n---\n");
  const auto monitoring = test::workload(3, "monitoring", "10.0.3.3");
  Case probe(monitoring, "orders", "GET", "/healthz", p);
  const CompiledRule *rule = first_rule(p, probe.r, probe.d.source_identity_name, probe.d.route);
  REQUIRE(rule);
  CHECK(rule->name == "probes");
  CHECK_FALSE(apply_rule(p, *rule, probe.r, probe.d));
  CHECK(probe.d.rule == "probes");
  CHECK(probe.d.action == Action::allow);
  CHECK_FALSE(probe.d.enforced);

  Case probe_posts(monitoring, "orders", "POST", "/healthz", p);
  CHECK_FALSE(first_rule(p, probe_posts.r, probe_posts.d.source_identity_name, probe_posts.d.route));

  Case deletes(kFrontend, "orders", "DELETE", "/orders/5", p);
  rule = first_rule(p, deletes.r, deletes.d.source_identity_name, deletes.d.route);
  REQUIRE(rule);
  REQUIRE(apply_rule(p, *rule, deletes.r, deletes.d));
  CHECK(deletes.d.action == Action::block);
  CHECK(deletes.d.block_scope == BlockScope::pair);
  CHECK_FALSE(deletes.d.kernel_block);
  CHECK(deletes.d.enforced);
  CHECK(deletes.d.contributions.at(0).evidence ==
        "rule no-deletes denies frontend -> orders DELETE /orders/{id}");

  Case deletes_payment(kFrontend, "payments", "DELETE", "/orders/5", p);
  rule = first_rule(p, deletes_payment.r, deletes_payment.d.source_identity_name, deletes_payment.d.route);
  REQUIRE(rule);
  CHECK(rule->name == "no-payments");

  // The destination is the identity called in transparent mode, or the service.
  Case pays(kFrontend, "transparent", "POST", "/charge", p);
  pays.input.destination_name = "payments";
  const Request to_payments = read_request(pays.input, kStart);
  rule = first_rule(p, to_payments, pays.d.source_identity_name, pays.d.route);
  REQUIRE(rule);
  CHECK(rule->name == "no-payments");
  REQUIRE(apply_rule(p, *rule, to_payments, pays.d));
  CHECK(pays.d.kernel_block);
}

TEST_CASE(
    "credential: failed when invalid, or missing where the service requires one; binding names the owner")
{
  const CompiledPolicy p = compiled(
      "  signals: {credential: {weight: 20}, binding: {weight: 50}}\n",
      "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n  listen: ':8080'\n"
      "  upstream: '127.0.0.1:9000'\n  auth: {jwt: {required: true, issuers: [i], jwks: /k.json}}\n"
      "  bindings: [{subject: 'svc:frontend', identities: [frontend]}]\n---\n" +
          identities({"frontend"}));
  Case valid(kFrontend, "orders", "GET", "/", p);
  CredentialCheck check = check_credential(p, valid.input);
  CHECK(check.service != nullptr);
  CHECK_FALSE(check.failed);

  Case missing(test::workload(7, "frontend", "10.0.1.5"), "orders", "GET", "/", p);
  check = check_credential(p, missing.input);
  REQUIRE(check.failed);
  score_credential(p, missing.r, check, missing.d);
  CHECK(missing.d.contributions.at(0).evidence == "no credential; service orders requires a JWT");
  Case open(test::workload(7, "frontend", "10.0.1.5"), "catalog", "GET", "/", p);
  check = check_credential(p, open.input);
  CHECK(check.service == nullptr);
  CHECK_FALSE(check.failed);

  auto revoked = kFrontend;
  revoked.credential = CredentialStatus::revoked;
  revoked.failure_reason = "jti r-1";
  Case bad(revoked, "catalog", "GET", "/", p);
  check = check_credential(p, bad.input);
  REQUIRE(check.failed);
  score_credential(p, bad.r, check, bad.d);
  CHECK(bad.d.score == 20);
  CHECK(bad.d.contributions.at(0).evidence == "revoked token: jti r-1");

  auto thief = test::workload(9, "batch", "10.0.2.9", "tok-frontend");
  thief.subject = "svc:frontend";
  thief.binding = BindingVerdict::violation;
  Case stolen(thief, "orders", "GET", "/", p);
  score_credential(p, stolen.r, check_credential(p, stolen.input), stolen.d);
  REQUIRE(stolen.d.contributions.size() == 1);
  CHECK(stolen.d.contributions.at(0).points == 50);
  CHECK(stolen.d.contributions.at(0).evidence ==
        "token of svc:frontend (bound to frontend) presented by batch");
}

TEST_CASE("signals, rate: silent in warm-up, fires on a burst over the baseline; one finding per table")
{
  const RateParams params{{true, 30}, 60 * kSecond, 0.1f, 6, 5};
  RateStat rate;
  RateFinding f;
  for (int i = 0; i < 50; ++i) f = learn_rate(params, rate, kStart, kStart + kSecond / 2);
  CHECK_FALSE(f.fired);  // a burst, but within the warm-up
  for (std::uint64_t second = 1; second <= 300; ++second)
    for (int i = 0; i < 2; ++i) f = learn_rate(params, rate, kStart, kStart + second * kSecond);
  CHECK_FALSE(f.fired);
  CHECK(f.count == 2);
  for (int i = 0; i < 30; ++i) f = learn_rate(params, rate, kStart, kStart + 301 * kSecond);
  REQUIRE(f.fired);
  CHECK(f.count == 30);
  CHECK(f.mean == doctest::Approx(2).epsilon(0.05));

  Decision d;
  d.source_identity_name = "frontend";
  const RateFinding token{true, 12, 1.5f, 9};
  score_rate(params, {}, token, d);
  CHECK(d.contributions.at(0).evidence ==
        "12 requests this second with this token from frontend, usual 1.5/s");
  d.contributions.clear();
  score_rate(params, f, token, d);  // the subject's own rate is the one reported
  REQUIRE(d.contributions.size() == 1);
  CHECK(d.contributions.at(0).evidence.find("30 requests this second from frontend, usual 2.0/s") == 0);
}

TEST_CASE(
    "signals, novelty: learning counts discoveries; after it a new endpoint is novel once and scans ramp")
{
  const NoveltyParams params{{true, 25}, 600 * kSecond, 60 * kSecond, 4, 40};
  SubjectState s;
  s.first_ns = kStart;
  NoveltyFinding f;
  // Endpoints are hashes; EndpointSet keeps them with the low bit set.
  for (std::uint64_t e = 1; e <= 4; ++e) f = learn_novelty(params, s, mix64(e), 0, kStart + e * kSecond);
  CHECK_FALSE(f.novel);
  CHECK(f.discovered_in_window == doctest::Approx(4));
  f = learn_novelty(params, s, mix64(1), 0, kStart + 700 * kSecond);
  CHECK_FALSE(f.novel);  // known
  CHECK(f.discovered_in_window == 0);
  f = learn_novelty(params, s, mix64(5), 0, kStart + 700 * kSecond);
  REQUIRE(f.novel);
  CHECK(f.novel_in_window == doctest::Approx(1));
  CHECK(f.novel_failures_in_window == 0);
  f = learn_novelty(params, s, mix64(6), 0, kStart + 701 * kSecond);
  CHECK(f.novel_in_window == doctest::Approx(2));

  Case c(kFrontend, "orders", "GET", "/admin", compiled());
  score_novelty(params, f, {}, c.r, c.d);
  CHECK(c.d.score == 25);  // two new endpoints that worked are half a burst of four: a deploy
  CHECK(c.d.contributions.at(0).evidence == "frontend never called orders GET /admin before");

  // While learning, a sweep is scored only when most of it fails.
  Case sweep(kFrontend, "orders", "GET", "/x", compiled());
  const NoveltyFinding discovered{false, 0, 0, 4};
  score_novelty(params, discovered, {}, sweep.r, sweep.d);
  CHECK(sweep.d.score == 0);
  score_novelty(params, discovered, {true, 0.9, 10}, sweep.r, sweep.d);
  CHECK(sweep.d.score == 40);
}

TEST_CASE("signals, novelty: failures of new endpoints count towards a scan, whatever else succeeds")
{
  const CompiledPolicy p = compiled("  signals:\n    novelty: {scanBurst: 4, scanWeight: 40}\n");
  const std::uint64_t after = kStart + 700 * kSecond;
  SubjectState s;
  s.first_ns = kStart;
  // The proxy reports an exchange by its decision id: the decisions 1 and 3 found new endpoints.
  const auto exchange = [&](std::uint64_t decision, int status) {
    ExchangeResult result;
    result.decision_id = decision;
    result.status = status;
    learn_exchange(p, result, s, after);
  };
  learn_novelty(p.novelty, s, mix64(1), 1, after);
  exchange(1, 200);
  exchange(2, 404);  // a known endpoint's failure
  for (int i = 0; i < 50; ++i) exchange(100 + i, 200);
  CHECK(s.novel_failures.estimate(after, p.novelty.scan_window_ns) == 0);
  learn_novelty(p.novelty, s, mix64(2), 3, after);
  learn_novelty(p.novelty, s, mix64(2), 4, after);  // known by now
  exchange(4, 404);
  CHECK(s.novel_failures.estimate(after, p.novelty.scan_window_ns) == 0);
  exchange(3, 404);
  CHECK(s.novel_failures.estimate(after, p.novelty.scan_window_ns) == doctest::Approx(1));

  const NoveltyFinding f = learn_novelty(p.novelty, s, mix64(3), 5, after);
  CHECK(f.novel_in_window == doctest::Approx(3));
  CHECK(f.novel_failures_in_window == doctest::Approx(1));
  CHECK(scan_share(p.novelty, f) == doctest::Approx(1));  // 3 new + 1 failed: a burst of 4
  Case c(kFrontend, "orders", "GET", "/admin", p);
  score_novelty(p.novelty, f, {}, c.r, c.d);
  CHECK(c.d.score == 25 + 40);
  CHECK(c.d.contributions.at(0).evidence ==
        "frontend never called orders GET /admin before; 3 new endpoints within 1m, 1 of them failing "
        "(scanning)");
  CHECK(scan_share(p.novelty, {true, 2, 0, 0}) == 0);  // half a burst: a deploy
  CHECK(scan_share(p.novelty, {true, 2, 1, 0}) == doctest::Approx(0.5));
  CHECK(scan_share(p.novelty, {true, 3, 9, 0}) == doctest::Approx(1));  // capped
}

TEST_CASE("signals, novelty: a full endpoint set evicts nothing, and what it does not hold stays new")
{
  const NoveltyParams params{{true, 25}, 600 * kSecond, 60 * kSecond, 10, 60};
  SubjectState s;
  s.first_ns = kStart;
  for (std::uint64_t e = 1; e <= EndpointSet::kLimit; ++e) learn_novelty(params, s, mix64(e), 0, kStart);
  const std::uint64_t after = kStart + 700 * kSecond;
  for (std::uint64_t e = 1000; e < 1200; ++e) CHECK(learn_novelty(params, s, mix64(e), 0, after).novel);
  CHECK(s.endpoints.size == EndpointSet::kLimit);
  for (std::uint64_t e = 1; e <= EndpointSet::kLimit; ++e)
    CHECK_FALSE(learn_novelty(params, s, mix64(e), 0, after).novel);
  CHECK(learn_novelty(params, s, mix64(1000), 0, after).novel);  // a flood's probe is never learned
}

TEST_CASE("signals, failures and payload: the ratio over enough requests; a body far above the usual")
{
  const FailureParams failures{{true, 30}, 60 * kSecond, 0.5, 10};
  SubjectState s;
  for (int i = 0; i < 9; ++i) s.failures.add(kStart, failures.window_ns);
  s.requests.add(kStart, failures.window_ns, 9);
  FailureFinding f = read_failures(failures, s, kStart);
  CHECK_FALSE(f.fired);  // under minRequests
  s.requests.add(kStart, failures.window_ns);
  f = read_failures(failures, s, kStart);
  REQUIRE(f.fired);
  CHECK(f.ratio == doctest::Approx(0.9));
  Decision d;
  d.source_identity_name = "batch";
  score_failures(failures, f, d);
  CHECK(d.contributions.at(0).evidence == "90% of batch's last 10 requests ended 401/403/404");

  const CompiledPolicy p = compiled();
  const PayloadParams payload{{true, 15}, 3, 6};
  SubjectState sizes;
  ExchangeResult small;
  small.status = 200;
  small.request_body_bytes = 1000;
  for (int i = 0; i < 2; ++i) learn_exchange(p, small, sizes, kStart);
  CHECK_FALSE(read_payload(payload, sizes, 5'000'000).fired);  // still warming up
  learn_exchange(p, small, sizes, kStart);
  CHECK(sizes.payload_samples == 3);
  CHECK_FALSE(read_payload(payload, sizes, 1200).fired);
  CHECK_FALSE(read_payload(payload, sizes, std::nullopt).fired);
  const PayloadFinding big = read_payload(payload, sizes, 5'000'000);
  REQUIRE(big.fired);
  Case c(kFrontend, "orders", "POST", "/", p);
  c.input.body_bytes = 5'000'000;
  score_payload(payload, big, c.r, c.d);
  CHECK(c.d.contributions.at(0).evidence == "body 5000000 B, usual about 1000 B");
}

TEST_CASE("signals, exchanges: only 401, 403 and 404 count as failures")
{
  const CompiledPolicy p = compiled();
  SubjectState s;
  ExchangeResult result;
  for (int status : {200, 401, 403, 404, 429, 500}) {
    result.status = status;
    learn_exchange(p, result, s, kStart);
  }
  CHECK(s.requests.estimate(kStart, p.failures.window_ns) == doctest::Approx(6));
  CHECK(s.failures.estimate(kStart, p.failures.window_ns) == doctest::Approx(3));
}

TEST_CASE("signals, roaming: a token's origins by identity and address, forgotten after the window")
{
  const std::uint64_t window = 600 * kSecond;
  TokenState t;
  token_origin(t, 7, 0xa1, window, kStart);
  token_origin(t, 7, 0xa1, window, kStart + kSecond);
  RoamingFinding f = count_origins(t);
  CHECK(f.identities == 1);
  CHECK(f.addresses == 1);
  TokenState::Origin &thief = token_origin(t, 9, 0xb2, window, kStart + 2 * kSecond);
  CHECK(thief.first_ns == kStart + 2 * kSecond);
  f = count_origins(t);
  CHECK(f.identities == 2);
  CHECK(f.ids[0] == 7);
  CHECK(f.ids[1] == 9);
  // Five origins share four slots: the oldest gives way.
  for (std::uint32_t a = 0xc0; a < 0xc3; ++a) token_origin(t, 7, a, window, kStart + 3 * kSecond);
  f = count_origins(t);
  CHECK(f.addresses == 4);
  CHECK(f.identities == 2);
  token_origin(t, 7, 0xa1, window, kStart + window + 4 * kSecond);
  f = count_origins(t);
  CHECK(f.identities == 1);
  CHECK(f.addresses == 1);

  struct Registry final : IdentityNames {
    std::string name_of(IdentityId id) const override { return id == 9 ? "batch" : std::string(); }
  } registry;
  const RoamingParams params{{true, 60}, window, 2};
  Decision d;
  d.source_identity_name = "batch";
  score_roaming(params, {2, 2, {7, 9}}, &registry, d);
  CHECK(d.contributions.at(0).evidence ==
        "token seen from 2 workload identities (id 7, batch) within 10m; now from batch");
  d.contributions.clear();
  d.score = 0;
  score_roaming(params, {1, 3, {7}}, &registry, d);
  CHECK(d.score == 30);  // many addresses, one identity: half the weight
}

TEST_CASE("signals, health: a degraded or unhealthy upstream")
{
  const HealthParams params{{true, 10}, 0.25, 1000};
  UpstreamHealth upstream{"orders-pool", 0, 0.01, 20, true};
  Case c(kFrontend, "orders", "GET", "/", compiled());
  score_health(params, c.r, c.d);  // no upstream known
  c.input.upstream = &upstream;
  score_health(params, c.r, c.d);
  CHECK(c.d.score == 0);
  upstream.healthy = false;
  score_health(params, c.r, c.d);
  CHECK(c.d.contributions.at(0).evidence ==
        "upstream orders-pool degraded: 1% errors, 20 ms latency, marked unhealthy");
}

TEST_CASE("signals, learn: the subject and token records; no token record when no signal needs one")
{
  const CompiledPolicy p = compiled();
  StateTables state{EngineOptions{}};
  Case c(kFrontend, "orders", "GET", "/orders/1", p);
  const Findings first = learn(p, c.r, c.d, state);
  CHECK(state.subjects.totals().size == 1);
  CHECK(state.tokens.totals().size == 1);
  CHECK_FALSE(first.block.active);
  CHECK_FALSE(first.novelty.novel);  // learning
  CHECK(first.novelty.discovered_in_window == doctest::Approx(1));

  // The (identity, token) rate: quiet before the warm-up, then a burst stands out, unless rate is off.
  const Case later(kFrontend, "orders", "GET", "/orders/1", p, kStart + 200 * kSecond);
  Findings burst;
  for (int i = 0; i < 50; ++i) burst = learn(p, later.r, later.d, state);
  CHECK_FALSE(first.token_rate.fired);
  CHECK(burst.token_rate.fired);
  CHECK(burst.token_rate.count == 50);
  CompiledPolicy rate_off = p;
  rate_off.rate.s.on = false;
  const Case next(kFrontend, "orders", "GET", "/orders/1", p, kStart + 201 * kSecond);
  for (int i = 0; i < 50; ++i) burst = learn(rate_off, next.r, next.d, state);
  CHECK_FALSE(burst.token_rate.fired);
  CHECK_FALSE(burst.rate.fired);

  auto thief = test::workload(9, "batch", "10.0.2.9", "tok-frontend");
  const Case stolen(thief, "orders", "GET", "/orders/1", p, kStart + 202 * kSecond);
  CHECK(learn(p, stolen.r, stolen.d, state).roaming.identities == 2);

  CompiledPolicy no_token_signals = p;
  no_token_signals.rate.s.on = false;
  no_token_signals.roaming.s.on = false;
  auto other = kFrontend;
  other.token_fingerprint = "tok-other";
  const Case second(other, "orders", "GET", "/orders/1", p);
  (void)learn(no_token_signals, second.r, second.d, state);
  CHECK(state.tokens.totals().size == 1);

  // An active block is found by requests within its scope only, rounded up to the millisecond.
  SubjectState s;
  s.block_until_ns = c.r.now + 1500;
  s.block_key = block_key(BlockScope::identity, c.r);
  const ActiveBlock block = active_block(s, BlockScope::identity, c.r);
  CHECK(block.active);
  CHECK(block.remaining_ms == 1);
  CHECK_FALSE(active_block(s, BlockScope::ip, c.r).active);
  s.block_until_ns = c.r.now;
  CHECK_FALSE(active_block(s, BlockScope::identity, c.r).active);
}

TEST_CASE("score: contributions in signal order, the sum capped at 100")
{
  const CompiledPolicy p = compiled(
      "  signals: {credential: {weight: 60}, watchlist: {weight: 50}}\n"
      "  lists: {watch: {identities: [frontend]}}\n",
      identities({"frontend"}));
  auto expired = kFrontend;
  expired.credential = CredentialStatus::expired;
  Case c(expired, "orders", "GET", "/", p);
  const UpstreamHealth down{"orders-pool", 9, 1, 0, false};
  c.input.upstream = &down;
  Findings f;
  f.failures = {true, 1, 20};
  score(p, c.r, f, check_credential(p, c.input), nullptr, c.d);
  REQUIRE(c.d.contributions.size() == 4);
  CHECK(c.d.contributions[0].signal == "credential");
  CHECK(c.d.contributions[1].signal == "failures");
  CHECK(c.d.contributions[2].signal == "health");
  CHECK(c.d.contributions[3].signal == "watchlist");
  CHECK(c.d.score == 100);
}

TEST_CASE("action: bands, the limit bucket, escalating blocks and an active block")
{
  const CompiledPolicy p = compiled(
      "  thresholds: {challenge: 40, limit: 60, block: 85}\n"
      "  limit: {ratePerSecond: 2, burst: 3, retryAfter: 1s}\n"
      "  block: {scope: identity, ttl: 1m, escalate: {factor: 3, max: 5m}}\n");
  CHECK(band(p, 39, false) == Action::allow);
  CHECK(band(p, 0, true) == Action::challenge);
  CHECK(band(p, 40, false) == Action::challenge);
  CHECK(band(p, 60, true) == Action::limit);
  CHECK(band(p, 85, false) == Action::block);

  SubjectState s;
  int admitted = 0;
  Decision d;
  for (int i = 0; i < 5; ++i) {
    d.action = Action::limit;
    admit_limited(p, s, kStart, false, d);
    admitted += d.action == Action::allow;
  }
  CHECK(admitted == 3);
  CHECK(d.action == Action::limit);
  CHECK(d.retry_after_s == 1);
  d.action = Action::limit;
  admit_limited(p, s, kStart + kSecond / 2, true, d);  // one token back, and the credential failed
  CHECK(d.action == Action::challenge);

  std::uint64_t ttls[3] = {};
  for (auto &ttl : ttls) {
    escalate_block(p, s, kStart, 0x51, d);
    ttl = d.block_ttl_ms;
  }
  CHECK(ttls[0] == 60000);
  CHECK(ttls[1] == 180000);
  CHECK(ttls[2] == 300000);
  CHECK(s.offenses == 3);
  CHECK(s.block_key == 0x51);
  CHECK(s.block_until_ns == kStart + 300000 * 1'000'000ULL);

  StateTables state{EngineOptions{}};
  Case blocked(kFrontend, "orders", "GET", "/", p);
  blocked.d.score = 90;
  act(p, blocked.r, {}, false, blocked.d.score, state, blocked.d);
  CHECK(blocked.d.action == Action::block);
  CHECK(blocked.d.block_ttl_ms == 60000);
  Case limited(test::workload(9, "batch", "10.0.2.9"), "orders", "GET", "/", p);
  limited.d.score = 70;
  act(p, limited.r, {}, false, limited.d.score, state, limited.d);
  CHECK(limited.d.action == Action::allow);  // the limit band's first request: the bucket is full
  Case again(kFrontend, "orders", "GET", "/", p);
  act(p, again.r, {true, 250}, false, again.d.score, state, again.d);
  CHECK(again.d.action == Action::block);
  CHECK(again.d.rule == "active-block");
  CHECK(again.d.block_ttl_ms == 250);
}

TEST_CASE("action: an allow rule's request is judged by its credential and binding points alone")
{
  Decision d;
  d.contributions = {{"rate", 30, ""}, {"credential", 40, ""}, {"novelty", 25, ""}, {"binding", 100, ""}};
  CHECK(credential_points(d) == 140);
  d.contributions = {{"rate", 30, ""}, {"watchlist", 100, ""}};
  CHECK(credential_points(d) == 0);
}
