// A workload that is still in its learning period has no baseline, so nothing it calls is "novel";
// but a newcomer sweeping many endpoints that mostly fail is scanning, and is stopped without
// waiting out the learning period. A newcomer exploring many endpoints that work is not.
#include <doctest/doctest.h>

#include <string>

#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::has_signal;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

policy::PolicySet default_with_scanner()
{
  return test::policy_from(
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: scanner}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n"
      "  signals:\n"
      "    novelty: {weight: 25, learn: 10m, scanWindow: 1m, scanBurst: 10, scanWeight: 60}\n"
      "    failures: {weight: 30, window: 1m, ratio: 0.5, minRequests: 10}\n"
      "  thresholds: {challenge: 40, limit: 60, block: 85}\n");
}

const char *const kProbes[] = {"/admin",          "/.env",          "/api/v1/users",
                               "/wp-login.php",   "/backup.tar.gz", "/orders/2/cancel",
                               "/internal/debug", "/actuator/env",  "/.git/config",
                               "/server-status",  "/api/v2/keys",   "/console"};

}  // namespace

TEST_CASE("a newcomer sweeping failing endpoints is blocked while still learning")
{
  Lab lab(default_with_scanner());
  const auto scanner = workload(11, "scanner", "10.0.3.4");
  Action last = Action::allow;
  int blocked_at = -1;
  for (int i = 0; i < 12; ++i) {
    lab.clock.advance_ms(100);
    const Decision d = lab.request(scanner, "GET", kProbes[i], 404);
    last = d.action;
    if (last == Action::block && blocked_at < 0) {
      blocked_at = i + 1;
      CHECK(has_signal(d, "novelty"));
      CHECK(has_signal(d, "failures"));
    }
  }
  CHECK(last == Action::block);
  CHECK(blocked_at == 11);  // 10 failed exchanges make the failure ratio count; the 11th request is stopped
}

TEST_CASE("a newcomer exploring many endpoints that work is left alone")
{
  Lab lab(default_with_scanner());
  const auto fresh = workload(12, "scanner", "10.0.3.5");
  for (int i = 0; i < 12; ++i) {
    lab.clock.advance_ms(100);
    const Decision d = lab.request(fresh, "GET", kProbes[i], 200);
    CHECK(d.action == Action::allow);
    CHECK_FALSE(has_signal(d, "novelty"));
  }
}
