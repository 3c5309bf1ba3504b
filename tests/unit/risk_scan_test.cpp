// A workload that keeps its normal traffic running while it probes endpoints it never called: the
// failure ratio is diluted by the normal successes, so the scan is seen by novelty alone, which
// counts new endpoints and their failures within novelty.scanWindow. Under the embedded default
// policy the probe is refused within 10 new endpoints; the block's scope is the policy's, identity,
// so the normal traffic stops with it. A deploy that adds a few routes is not a scan.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <riskgate/policy/embedded.h>

#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

constexpr int kRequestGapMs = 200;  // normal traffic: 5 requests a second

struct Endpoint {
  std::string service, method, path;
};

// Two letters for k < 676: a path segment that no route template collapses into an id.
std::string letters(int k)
{
  std::string out(2, 'a');
  out[0] = static_cast<char>('a' + k / 26 % 26);
  out[1] = static_cast<char>('a' + k % 26);
  return out;
}

// One workload's normal traffic: its known endpoints in turn, every one answered 200.
struct Workload {
  Lab &lab;
  RequestIdentity who;
  std::vector<Endpoint> known;
  std::size_t sent = 0;

  Decision normal()
  {
    lab.clock.advance_ms(kRequestGapMs);
    const Endpoint &e = known[sent++ % known.size()];
    return lab.request(who, e.method, e.path + "/" + std::to_string(sent), 200, e.service);
  }
  // Past the default learning period (10m) and the rate warm-up, on normal traffic only.
  void learn()
  {
    for (int i = 0; i < 12 * 60 * 1000 / kRequestGapMs; ++i) REQUIRE(normal().action == Action::allow);
  }
  Decision call(const Endpoint &e, int status)
  {
    lab.clock.advance_ms(kRequestGapMs);
    return lab.request(who, e.method, e.path, status, e.service);
  }
};

std::vector<Endpoint> frontend_endpoints()
{
  return {{"orders", "GET", "/orders"},
          {"orders", "POST", "/orders"},
          {"orders", "GET", "/orders/items"},
          {"catalog", "GET", "/catalog"}};
}

// Mostly 404s, some 200s: what a scanner sees of an upstream.
const char *const kProbes[] = {"/admin",         "/.env",           "/wp-login.php", "/backup.tar.gz",
                               "/server-status", "/internal/debug", "/actuator/env", "/.git/config",
                               "/console",       "/api/keys",       "/metrics",      "/swagger.json"};
const int kProbeStatus[] = {404, 404, 200, 404, 404, 200, 404, 404, 404, 200, 404, 404};

// Probes one new endpoint after every 4 normal requests, until the probe is refused (limit or block)
// or the probes run out; returns the probe number refused (0: none). Every normal request before it
// must be allowed with no points.
int probe_until_refused(Workload &w)
{
  for (int i = 0; i < static_cast<int>(std::size(kProbes)); ++i) {
    for (int n = 0; n < 4; ++n) {
      const Decision d = w.normal();
      CHECK(d.action == Action::allow);
      CHECK(d.score == 0);
    }
    const Decision d = w.call({"orders", "GET", kProbes[i]}, kProbeStatus[i]);
    if (d.action == Action::limit || d.action == Action::block) {
      CHECK(test::has_signal(d, "novelty"));
      CHECK_FALSE(test::has_signal(d, "failures"));  // diluted by the normal traffic
      return i + 1;
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("a workload probing new endpoints is refused within 10 while its normal traffic runs at full rate")
{
  Lab lab(*policy::load_default().set);
  Workload w{lab, workload(7, "frontend", "10.0.1.5"), frontend_endpoints()};
  w.learn();
  const int refused_at = probe_until_refused(w);
  CHECK(refused_at > 0);
  CHECK(refused_at <= 10);
  // The default block scope is identity: a workload that scans is compromised, and its normal
  // requests are no more trustworthy than its probes.
  for (int i = 0; i < 10; ++i) {
    const Decision d = w.normal();
    CHECK(d.action == Action::block);
  }
}

TEST_CASE("a workload whose full endpoint table a scan cannot hide behind")
{
  Lab lab(*policy::load_default().set);
  std::vector<Endpoint> many;
  for (int k = 0; k < 96; ++k) many.push_back({"orders", "GET", "/api/" + letters(k)});
  Workload w{lab, workload(8, "gateway", "10.0.1.6"), many};
  w.learn();
  const int refused_at = probe_until_refused(w);
  CHECK(refused_at > 0);
  CHECK(refused_at <= 10);
}

TEST_CASE("a workload that adds three endpoints after learning is never challenged, limited or blocked")
{
  Lab lab(*policy::load_default().set);
  Workload w{lab, workload(9, "checkout", "10.0.4.4"), frontend_endpoints()};
  w.learn();
  const std::vector<Endpoint> added = {{"orders", "GET", "/orders/refunds"},
                                       {"orders", "POST", "/orders/refunds"},
                                       {"catalog", "GET", "/offers"}};
  // The worst case of a deploy: all three in the same minute, each failing at first (the client
  // rolled out before the server), then working; the normal traffic goes on around them.
  for (int round = 0; round < 20; ++round) {
    for (const auto &e : added) {
      const Decision d = w.call(e, round == 0 ? 404 : 200);
      CHECK(d.action == Action::allow);
      CHECK(w.normal().action == Action::allow);
    }
  }
}
