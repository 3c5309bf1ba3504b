// Each signal alone, on synthetic request streams: quiet before its warm-up, fires on the anomaly,
// quiet on normal traffic. Then the hard rules, the action bands and the HTTP answers.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <riskgate/policy/route.h>
#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::has_signal;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

constexpr const char *kSignals[] = {"credential", "binding", "roaming", "rate",     "novelty",
                                    "failures",   "payload", "health",  "watchlist"};

// A policy where only `signal` (with `settings`) is on. Thresholds are low so one signal can act.
policy::PolicySet only(const std::string &signal, const std::string &settings, const std::string &extra = "")
{
  std::string yaml =
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: frontend}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: batch}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: t}\nspec:\n  signals:\n";
  for (const char *name : kSignals)
    yaml += name == signal ? "    " + signal + ": " + settings + "\n"
                           : std::string("    ") + name + ": {enabled: false}\n";
  yaml += extra;
  return test::policy_from(yaml);
}

const auto kFrontend = workload(7, "frontend", "10.0.1.5", "tok-frontend");
const auto kBatch = workload(9, "batch", "10.0.2.9", "tok-batch");

}  // namespace

TEST_CASE("route templates collapse numeric ids, UUIDs and hex runs")
{
  std::string out;
  policy::template_route("/orders/12345/items/7", out);
  CHECK(out == "/orders/{id}/items/{id}");
  policy::template_route("/users/3f2a1c4e-9b7d-4e21-8a6f-0c5d2e1b7a90/avatar", out);
  CHECK(out == "/users/{id}/avatar");
  policy::template_route("/blobs/5f3a9c0e7b21d4e8", out);
  CHECK(out == "/blobs/{id}");
  policy::template_route("/deadbeef/v2/api", out);
  CHECK(out == "/deadbeef/v2/api");
  policy::template_route("", out);
  CHECK(out == "/");
}

TEST_CASE("rate: quiet in warm-up and on steady traffic, fires on a burst against the baseline")
{
  Lab lab(only("rate", "{weight: 50, warmup: 2m, halfLife: 5m, sigma: 6, minRate: 5}"));
  // A burst in the first minute is not scored: no baseline yet.
  for (int i = 0; i < 40; ++i) CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/1"), "rate"));
  // Ten minutes at 2-3 requests per second.
  int fired = 0;
  for (int second = 0; second < 600; ++second) {
    lab.clock.advance_ms(1000);
    for (int i = 0; i < 2 + second % 2; ++i)
      fired += has_signal(lab.request(kFrontend, "GET", "/orders/1"), "rate");
  }
  CHECK(fired == 0);
  lab.clock.advance_ms(1000);
  Decision last;
  for (int i = 0; i < 60; ++i) last = lab.request(kFrontend, "GET", "/orders/1");
  REQUIRE(has_signal(last, "rate"));
  CHECK(last.contributions.at(0).points == 50);
  CHECK(last.contributions.at(0).evidence.find("60 requests this second from frontend") != std::string::npos);
}

TEST_CASE("novelty: learns during the learning period, fires once per new endpoint, ramps on a scan")
{
  Lab lab(only("novelty", "{weight: 25, learn: 10m, scanWindow: 1m, scanBurst: 5, scanWeight: 50}"));
  for (int i = 0; i < 100; ++i) {
    lab.clock.advance_ms(5000);
    CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/" + std::to_string(i)), "novelty"));
    CHECK_FALSE(has_signal(lab.request(kFrontend, "POST", "/orders"), "novelty"));
  }
  // Learned: other ids on the same template stay quiet.
  CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/99999"), "novelty"));
  lab.clock.advance_ms(120000);
  const Decision first = lab.request(kFrontend, "DELETE", "/orders/5");
  REQUIRE(has_signal(first, "novelty"));
  CHECK(first.score == 25);
  CHECK(first.contributions.at(0).evidence == "frontend never called orders DELETE /orders/{id} before");
  CHECK_FALSE(has_signal(lab.request(kFrontend, "DELETE", "/orders/6"), "novelty"));
  // A scan: every request a new endpoint; the score climbs with the burst.
  lab.clock.advance_ms(120000);
  int previous = 0;
  for (const char *path : {"/admin", "/.env", "/wp-login.php", "/debug/vars", "/actuator/env"}) {
    const Decision d = lab.request(kFrontend, "GET", path);
    REQUIRE(has_signal(d, "novelty"));
    CHECK(d.score >= previous);
    previous = d.score;
  }
  CHECK(previous == 75);
}

TEST_CASE("roaming: the evidence names the identities the token came from, by name where there is one")
{
  struct Names final : risk::IdentityNames {
    std::string name_of(IdentityId id) const override { return id == 7 ? "frontend" : ""; }
  } names;
  risk::EngineOptions options;
  options.names = &names;
  Lab lab(only("roaming", "{weight: 60, window: 10m, maxAddresses: 2}"), options);
  (void)lab.request(kFrontend, "GET", "/orders/1");
  auto thief = kBatch;
  thief.token_fingerprint = kFrontend.token_fingerprint;
  const Decision stolen = lab.request(thief, "GET", "/orders/1");
  REQUIRE(has_signal(stolen, "roaming"));
  CHECK(stolen.contributions.at(0).evidence ==
        "token seen from 2 workload identities (frontend, id 9) within 10m; now from batch");
}

TEST_CASE("roaming: one token from two workloads, or from too many addresses")
{
  Lab lab(only("roaming", "{weight: 60, window: 10m, maxAddresses: 2}"));
  for (int i = 0; i < 20; ++i) CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/1"), "roaming"));
  auto thief = kBatch;
  thief.token_fingerprint = kFrontend.token_fingerprint;
  const Decision stolen = lab.request(thief, "GET", "/orders/1");
  REQUIRE(has_signal(stolen, "roaming"));
  CHECK(stolen.score == 60);
  CHECK(stolen.contributions.at(0).evidence.find("2 workload identities (id 7, id 9)") != std::string::npos);
  // Outside the window the old origin is forgotten.
  lab.clock.advance_ms(11 * 60000);
  CHECK_FALSE(has_signal(lab.request(thief, "GET", "/orders/1"), "roaming"));

  auto moving = workload(11, "mover", "10.9.0.1", "tok-mover");
  int fired = 0;
  for (const char *address : {"10.9.0.1", "10.9.0.2", "10.9.0.3"}) {
    moving.source = test::ipv4(address);
    const Decision d = lab.request(moving, "GET", "/x");
    fired += has_signal(d, "roaming");
    if (has_signal(d, "roaming"))
      CHECK(d.score == 30);
  }
  CHECK(fired == 1);
}

TEST_CASE("failures: a high 401/403/404 share over enough requests")
{
  Lab lab(only("failures", "{weight: 35, window: 1m, ratio: 0.5, minRequests: 10}"));
  // Normal: 1 in 10 is a 404.
  for (int i = 0; i < 50; ++i) {
    lab.clock.advance_ms(500);
    CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/1", i % 10 == 0 ? 404 : 200), "failures"));
  }
  // Enumeration: ids that do not exist.
  lab.clock.advance_ms(120000);
  int fired_at = -1;
  for (int i = 0; i < 30 && fired_at < 0; ++i) {
    lab.clock.advance_ms(100);
    if (has_signal(lab.request(kBatch, "GET", "/orders/" + std::to_string(i), 404), "failures"))
      fired_at = i;
  }
  CHECK(fired_at == 10);  // quiet until minRequests completed exchanges
}

TEST_CASE("payload: a body far outside the identity's usual size")
{
  Lab lab(only("payload", "{weight: 40, warmup: 50, sigma: 6}"));
  CHECK_FALSE(has_signal(lab.request(kFrontend, "POST", "/orders", 200, "orders", 5'000'000), "payload"));
  for (int i = 0; i < 200; ++i)
    CHECK_FALSE(has_signal(lab.request(kFrontend, "POST", "/orders", 200, "orders", 800 + (i * 37) % 600),
                           "payload"));
  CHECK_FALSE(has_signal(lab.request(kFrontend, "POST", "/orders", 200, "orders", 2500), "payload"));
  const Decision big = lab.request(kFrontend, "POST", "/orders", 200, "orders", 5'000'000);
  REQUIRE(has_signal(big, "payload"));
  CHECK(big.contributions.at(0).evidence.find("body 5000000 B, usual about") != std::string::npos);
}

TEST_CASE("health: a degraded upstream adds its weight")
{
  Lab lab(only("health", "{weight: 10, errorRatio: 0.25, latency: 1s}"));
  UpstreamHealth upstream{"orders-pool", 0, 0.01, 20, true};
  risk::RiskInput input{&kFrontend, "orders", "GET", "/orders/1", std::nullopt, 0, {}, 0, &upstream};
  CHECK(lab.engine.evaluate(input).score == 0);
  upstream.error_ratio = 0.4;
  const Decision degraded = lab.engine.evaluate(input);
  CHECK(degraded.score == 10);
  CHECK(degraded.contributions.at(0).evidence == "upstream orders-pool degraded: 40% errors, 20 ms latency");
  upstream = {"orders-pool", 5, 0, 2500, false};
  CHECK(lab.engine.evaluate(input).score == 10);
}

TEST_CASE("static lists: deny blocks before scoring, watch adds points")
{
  Lab lab(only("watchlist", "{weight: 20}",
               "  lists:\n    deny: {identities: [batch], cidrs: [198.51.100.0/24]}\n"
               "    watch: {identities: [frontend], cidrs: ['2001:db8::/32']}\n"));
  const Decision denied = lab.request(kBatch, "GET", "/orders/1");
  CHECK(denied.action == Action::block);
  CHECK(denied.rule == "denylist");
  CHECK(denied.block_scope == BlockScope::identity);
  auto outsider = workload(0, "", "198.51.100.7");
  const Decision by_ip = lab.request(outsider, "GET", "/");
  CHECK(by_ip.action == Action::block);
  CHECK(by_ip.block_scope == BlockScope::ip);
  CHECK(by_ip.source_identity_name == "world");
  Lab strict(only("watchlist", "{weight: 20}", "  lists: {deny: {identities: [world]}}\n"));
  const Decision unknown = strict.request(workload(0, "", "192.0.2.1"), "GET", "/");
  CHECK(unknown.action == Action::block);
  CHECK(unknown.block_scope == BlockScope::ip);
  CHECK(strict.request(kFrontend, "GET", "/").action == Action::allow);
  const Decision watched = lab.request(kFrontend, "GET", "/orders/1");
  CHECK(watched.action == Action::allow);
  CHECK(watched.score == 20);
  CHECK(watched.contributions.at(0).evidence == "identity frontend is on lists.watch");
}

TEST_CASE("credential: invalid or missing required credentials are at least a challenge")
{
  const std::string services =
      "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n  listen: ':8080'\n"
      "  upstream: '127.0.0.1:9000'\n  auth: {jwt: {required: true, issuers: [i], jwks: /k.json}}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: open}\nspec: {listen: ':8081', upstream: "
      "'127.0.0.1:9001'}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n"
      "  signals: {credential: {weight: 20}}\n";
  Lab lab(test::policy_from(services));
  auto expired = kFrontend;
  expired.credential = CredentialStatus::expired;
  expired.failure_reason = "exp 1700000000 is 2h in the past";
  const Decision d = lab.request(expired, "GET", "/orders/1");
  CHECK(d.action == Action::challenge);
  CHECK(d.score == 20);
  CHECK(d.contributions.at(0).evidence == "expired token: exp 1700000000 is 2h in the past");
  auto verdict = agent::to_verdict(d);
  CHECK(verdict.status == 401);
  CHECK(verdict.reason == "invalid_token");
  CHECK(verdict.header("www-authenticate") ==
        "Bearer realm=\"riskgate\", error=\"invalid_token\", error_description=\"expired token: exp "
        "1700000000 is "
        "2h in the past\"");

  const auto anonymous = workload(7, "frontend", "10.0.1.5");
  const Decision missing = lab.request(anonymous, "GET", "/orders/1");
  CHECK(missing.action == Action::challenge);
  CHECK(agent::to_verdict(missing).header("WWW-Authenticate") == "Bearer realm=\"riskgate\"");
  const Decision open = lab.request(anonymous, "GET", "/", 200, "open");
  CHECK(open.action == Action::allow);

  // The proxy fills one verdict per exchange slot, request after request: a forward written over
  // the 401 above keeps nothing of it.
  agent::to_verdict(open, verdict);
  CHECK(verdict.kind == HookVerdict::Kind::forward);
  CHECK(verdict.status == 0);
  CHECK(verdict.reason.empty());
  CHECK_FALSE(verdict.header("www-authenticate"));
  CHECK(verdict.header("x-riskgate-identity") == "frontend");
  CHECK(verdict.header("x-riskgate-decision") == std::to_string(open.id));
}

TEST_CASE("binding: a bound token presented by another workload")
{
  Lab lab(only("binding", "{weight: 100}"));
  auto thief = kBatch;
  thief.token_fingerprint = kFrontend.token_fingerprint;
  thief.subject = "svc:frontend";
  thief.binding = BindingVerdict::violation;
  const Decision d = lab.request(thief, "GET", "/orders/1");
  CHECK(d.action == Action::block);
  CHECK(d.contributions.at(0).evidence == "token of svc:frontend presented by batch");
  CHECK(d.block_ttl_ms == 600000);
}

TEST_CASE("rules: explicit deny by pair and route, explicit allow skips scoring")
{
  const std::string yaml =
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: batch}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: frontend}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: monitoring}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n  rules:\n"
      "    - {name: batch-never-pays, deny: {from: [batch], to: [payments]}}\n"
      "    - {name: no-admin, mode: observe, deny: {from: ['*'], routes: ['/admin/*']}}\n"
      "    - {name: probes, allow: {from: [monitoring], routes: ['GET /healthz']}}\n"
      "    - {name: frontend-deletes, deny: {from: [frontend], to: [orders], routes: ['DELETE "
      "/orders/{id}']}}\n"
      "---\napiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: payments}\nspec: {listen: ':1', "
      "upstream: "
      "'h:2'}\n---\napiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec: {listen: "
      "':3', "
      "upstream: 'h:4'}\n";
  Lab lab(test::policy_from(yaml));
  const Decision pays = lab.request(kBatch, "POST", "/charge", 200, "payments");
  CHECK(pays.action == Action::block);
  CHECK(pays.rule == "batch-never-pays");
  CHECK(pays.block_scope == BlockScope::pair);
  CHECK(pays.kernel_block);
  CHECK(pays.enforced);
  const Decision admin = lab.request(kFrontend, "GET", "/admin/users", 200, "orders");
  CHECK(admin.action == Action::block);
  CHECK_FALSE(admin.enforced);
  CHECK(agent::to_verdict(admin).kind == HookVerdict::Kind::forward);
  const Decision del = lab.request(kFrontend, "DELETE", "/orders/77");
  CHECK(del.rule == "frontend-deletes");
  CHECK_FALSE(del.kernel_block);
  CHECK(lab.request(kFrontend, "GET", "/orders/77").action == Action::allow);
  auto probe = workload(3, "monitoring", "10.0.3.3");
  const Decision allowed = lab.request(probe, "GET", "/healthz");
  CHECK(allowed.action == Action::allow);
  CHECK(allowed.rule == "probes");
  // The rule admits the route, not a bad credential: that is challenged as anywhere else.
  probe.credential = CredentialStatus::invalid;
  const Decision forged = lab.request(probe, "GET", "/healthz");
  CHECK(forged.action == Action::challenge);
  CHECK(forged.rule == "probes");
}

TEST_CASE("rules: an allow rule leaves active blocks and token bindings in force")
{
  const std::string yaml =
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: monitoring}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n"
      "  signals: {watchlist: {weight: 100}}\n"
      "  lists: {watch: {identities: [monitoring]}}\n"
      "  rules:\n    - {name: probes, allow: {from: [monitoring], routes: ['GET /healthz']}}\n";
  Lab lab(test::policy_from(yaml));
  auto probe = workload(3, "monitoring", "10.0.3.3");
  // Scored on its own (weight 100 on the watch list) the rule is what admits /healthz ...
  CHECK(lab.request(probe, "GET", "/healthz").action == Action::allow);
  // ... until the identity is blocked for something else: the block holds on the allowed route too.
  REQUIRE(lab.request(probe, "GET", "/other").action == Action::block);
  const Decision during = lab.request(probe, "GET", "/healthz");
  CHECK(during.action == Action::block);
  CHECK(during.rule == "active-block");

  Lab bound(test::policy_from(yaml));
  auto thief = workload(4, "monitoring", "10.0.3.4");
  thief.binding = BindingVerdict::violation;
  thief.binding_reason = "token of svc:frontend presented by monitoring";
  const Decision stolen = bound.request(thief, "GET", "/healthz");
  CHECK(stolen.action == Action::block);
  CHECK(stolen.rule == "probes");
}

TEST_CASE("bands: limit admits at the bucket rate with Retry-After, blocks escalate on repeat")
{
  Lab lab(only("watchlist", "{weight: 65}",
               "  lists: {watch: {identities: [frontend, batch]}}\n"
               "  limit: {ratePerSecond: 2, burst: 3, retryAfter: 1s}\n"
               "  block: {scope: identity, ttl: 1m, escalate: {factor: 3, max: 5m}}\n"));
  int admitted = 0;
  Decision limited;
  for (int i = 0; i < 10; ++i) {
    const Decision d = lab.request(kFrontend, "GET", "/orders/1");
    admitted += d.action == Action::allow;
    if (d.action == Action::limit)
      limited = d;
  }
  CHECK(admitted == 3);
  REQUIRE(limited.action == Action::limit);
  CHECK(limited.retry_after_s == 1);
  const auto verdict = agent::to_verdict(limited);
  CHECK(verdict.status == 429);
  CHECK(verdict.header("retry-after") == "1");
  lab.clock.advance_ms(1000);
  admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += lab.request(kFrontend, "GET", "/orders/1").action == Action::allow;
  CHECK(admitted == 2);

  // Block band: first block 1m, active until it expires, then 3m, then capped at 5m.
  lab.engine.install(only("watchlist", "{weight: 90}",
                          "  lists: {watch: {identities: [frontend, batch]}}\n"
                          "  block: {scope: identity, ttl: 1m, escalate: {factor: 3, max: 5m}}\n"));
  std::uint64_t ttls[3] = {};
  for (auto &ttl : ttls) {
    const Decision b = lab.request(kBatch, "GET", "/x");
    REQUIRE(b.action == Action::block);
    CHECK(b.rule.empty());
    ttl = b.block_ttl_ms;
    lab.clock.advance_ms(30000);
    const Decision again = lab.request(kBatch, "GET", "/x");
    CHECK(again.rule == "active-block");
    CHECK(again.block_ttl_ms == ttl - 30000);
    lab.clock.advance_ms(ttl);
  }
  CHECK(ttls[0] == 60000);
  CHECK(ttls[1] == 180000);
  CHECK(ttls[2] == 300000);
  const auto blocked = agent::to_verdict(lab.request(kFrontend, "GET", "/x"));
  CHECK(blocked.status == 403);
  CHECK(blocked.close_after);
}

TEST_CASE("a risky valid token is challenged with a step-up error")
{
  Lab lab(only("watchlist", "{weight: 45}", "  lists: {watch: {identities: [frontend]}}\n"));
  const Decision d = lab.request(kFrontend, "GET", "/orders/1");
  CHECK(d.action == Action::challenge);
  const auto verdict = agent::to_verdict(d);
  CHECK(verdict.reason == "risk_challenge");
  CHECK(verdict.header("www-authenticate") ==
        "Bearer realm=\"riskgate\", error=\"insufficient_user_authentication\", error_description=\"risk "
        "score 45: "
        "watchlist\"");
}

TEST_CASE("decisions carry identity, route, version, unique increasing ids and their cost")
{
  Lab lab(
      test::policy_from("apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec: {}\n"));
  const Decision a = lab.request(kFrontend, "GET", "/orders/42");
  const Decision b = lab.request(kFrontend, "GET", "/orders/43");
  CHECK(b.id == a.id + 1);
  CHECK(a.route == "/orders/{id}");
  CHECK(a.source_identity == 7);
  CHECK(a.source_identity_name == "frontend");
  CHECK(a.source_address == "10.0.1.5:40000");
  CHECK(a.token_fingerprint == "tok-frontend");
  CHECK(a.policy_version == lab.engine.policy_version());
  CHECK(a.evaluation_ns > 0);
  CHECK(a.time_unix_ns > 0);
  const auto stats = lab.engine.stats();
  CHECK(stats.decisions[static_cast<int>(Action::allow)] == 2);
  CHECK(stats.tracked_tokens == 1);
  CHECK(stats.tracked_subjects == 1);
}
