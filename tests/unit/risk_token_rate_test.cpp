// The rate signal's (identity, token) baseline: one token bursting inside an identity whose total
// traffic looks normal is still seen, and the same token presented by another identity has a
// baseline of its own (it neither feeds nor hides behind its owner's).
#include <doctest/doctest.h>

#include <string>

#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::has_signal;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

policy::PolicySet rate_only()
{
  std::string yaml =
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: frontend}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: batch}\nspec: {}\n---\n"
      "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: t}\nspec:\n  signals:\n"
      "    rate: {weight: 50, warmup: 2m, halfLife: 5m, sigma: 6, minRate: 5}\n";
  for (const char *off :
       {"credential", "binding", "roaming", "novelty", "failures", "payload", "health", "watchlist"})
    yaml += std::string("    ") + off + ": {enabled: false}\n";
  return test::policy_from(yaml);
}

}  // namespace

TEST_CASE("rate: one token bursting within an identity's normal total is seen per (identity, token)")
{
  Lab lab(rate_only());
  const auto hot = workload(7, "frontend", "10.0.1.5", "tok-hot");
  // Ten minutes: 40 tokens of the frontend at one request a second each, and tok-hot at one too.
  int fired = 0;
  for (int second = 0; second < 600; ++second) {
    lab.clock.advance_ms(1000);
    for (int t = 0; t < 40; ++t)
      fired += has_signal(
          lab.request(workload(7, "frontend", "10.0.1.5", "tok-" + std::to_string(t)), "GET", "/o"), "rate");
    fired += has_signal(lab.request(hot, "GET", "/o"), "rate");
  }
  CHECK(fired == 0);

  // tok-hot alone goes to 15 a second: the frontend's total (55 against about 41) is within its
  // noise, the token's own use is not.
  lab.clock.advance_ms(1000);
  Decision last;
  for (int i = 0; i < 15; ++i) last = lab.request(hot, "GET", "/o");
  REQUIRE(has_signal(last, "rate"));
  CHECK(last.contributions.at(0).evidence.find("requests this second with this token from frontend") !=
        std::string::npos);

  // The same token from batch starts its own baseline: in warm-up, not scored.
  const auto thief = workload(9, "batch", "10.0.2.9", "tok-hot");
  lab.clock.advance_ms(1000);
  for (int i = 0; i < 15; ++i) CHECK_FALSE(has_signal(lab.request(thief, "GET", "/o"), "rate"));
}
