// Scenarios on a synthetic day of traffic from several workloads, under the embedded default policy:
// normal traffic is never challenged, limited or blocked; a stolen token is blocked at once when it
// is bound and within 5 requests when it is not; a scan is challenged, then blocked; observe mode logs
// the same decisions and enforces none of them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <riskgate/policy/embedded.h>

#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::has_signal;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

struct Endpoint {
  const char *service;
  const char *method;
  const char *path;  // "{n}" is replaced by a random id
  std::uint64_t body_mean;
};

struct Profile {
  RequestIdentity who;
  double share;  // of all requests
  std::vector<Endpoint> endpoints;
};

std::vector<Profile> profiles()
{
  return {
      {workload(7, "frontend", "10.0.1.5", "tok-frontend"),
       0.40,
       {{"orders", "GET", "/orders/{n}", 0},
        {"orders", "POST", "/orders", 900},
        {"orders", "GET", "/orders/{n}/items", 0},
        {"catalog", "GET", "/catalog/{n}", 0}}},
      {workload(9, "batch", "10.0.2.9", "tok-batch"),
       0.10,
       {{"orders", "GET", "/orders", 0}, {"orders", "POST", "/orders/{n}/settle", 300}}},
      {workload(11, "reports", "10.0.3.2", "tok-reports"),
       0.10,
       {{"reports", "GET", "/reports/{n}", 0}, {"orders", "GET", "/orders", 0}}},
      {workload(13, "checkout", "10.0.4.4", "tok-checkout"),
       0.25,
       {{"payments", "POST", "/payments", 2000}, {"payments", "GET", "/payments/{n}", 0}}},
      {workload(15, "search", "10.0.5.1", "tok-search"),
       0.15,
       {{"catalog", "GET", "/search", 0}, {"catalog", "GET", "/catalog/{n}", 0}}},
  };
}

// Poisson arrivals of every profile at a diurnal rate (quiet nights, busy afternoons), random
// endpoints and ids, lognormal bodies, 2% of requests answered 404 by the upstream.
class Day {
 public:
  explicit Day(Lab &lab, double requests_per_day)
      : lab_(lab), profiles_(profiles()), per_day_(requests_per_day)
  {
    for (std::size_t i = 0; i < profiles_.size(); ++i) next_.push_back(arrival(i, 0));
  }

  // Runs until `count` requests were sent; returns how many decisions were not allow.
  int run(int count, std::vector<Decision> *unusual = nullptr)
  {
    int not_allowed = 0;
    for (int n = 0; n < count; ++n) {
      std::size_t who = 0;
      for (std::size_t i = 1; i < next_.size(); ++i)
        if (next_[i] < next_[who])
          who = i;
      const std::uint64_t at = next_[who];
      if (at > now_)
        lab_.clock.advance_ns(at - now_);
      now_ = at;
      next_[who] = arrival(who, at);
      const Profile &p = profiles_[who];
      const Endpoint &e = p.endpoints[random_() % p.endpoints.size()];
      std::string path = e.path;
      if (const auto pos = path.find("{n}"); pos != std::string::npos)
        path.replace(pos, 3, std::to_string(random_() % 100000));
      std::uint64_t body = 0;
      if (e.body_mean)
        body = static_cast<std::uint64_t>(
            std::lognormal_distribution<double>(std::log(e.body_mean), 0.5)(random_));
      const int status = std::uniform_real_distribution<double>(0, 1)(random_) < 0.02 ? 404 : 200;
      const Decision d = lab_.request(p.who, e.method, path, status, e.service, body);
      if (d.action != Action::allow) {
        ++not_allowed;
        if (unusual)
          unusual->push_back(d);
      }
    }
    return not_allowed;
  }

  std::uint64_t elapsed_ns() const { return now_; }

 private:
  std::uint64_t arrival(std::size_t i, std::uint64_t from)
  {
    constexpr double kDayNs = 86400e9;
    const double phase = std::sin(M_PI * std::fmod(static_cast<double>(from), kDayNs) / kDayNs);
    const double rate_per_ns = per_day_ / kDayNs * profiles_[i].share * (0.3 + 1.4 * phase * phase);
    return from + static_cast<std::uint64_t>(std::exponential_distribution<double>(rate_per_ns)(random_)) + 1;
  }

  Lab &lab_;
  std::vector<Profile> profiles_;
  double per_day_;
  std::vector<std::uint64_t> next_;
  std::uint64_t now_ = 0;
  std::mt19937_64 random_{20261129};
};

policy::PolicySet default_policy()
{
  return *policy::load_default().set;
}

policy::PolicySet observe_policy()
{
  std::string text(embedded::default_yaml);
  const auto pos = text.find("mode: enforce");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 13, "mode: observe");
  return test::policy_from(text);
}

RequestIdentity steal(const RequestIdentity &victim, const RequestIdentity &thief, BindingVerdict binding)
{
  RequestIdentity out = thief;
  out.token_fingerprint = victim.token_fingerprint;
  out.subject = victim.subject;
  out.binding = binding;
  return out;
}

}  // namespace

TEST_CASE("a normal day of 100k requests gets no challenge, limit or block")
{
  Lab lab(default_policy());
  Day day(lab, 100000);
  std::vector<Decision> unusual;
  const int not_allowed = day.run(100000, &unusual);
  for (const auto &d : unusual) {
    std::string why;
    for (const auto &c : d.contributions)
      why += c.signal + " " + std::to_string(c.points) + " (" + c.evidence + ") ";
    INFO(d.source_identity_name << " " << d.method << " " << d.route << ": " << to_string(d.action) << " "
                                << why);
    CHECK(d.action == Action::allow);
  }
  CHECK(not_allowed == 0);
  CHECK(day.elapsed_ns() > 20ull * 3600 * 1'000'000'000);
  CHECK(lab.engine.stats().decisions[static_cast<int>(Action::allow)] == 100000);
}

TEST_CASE("a stolen token")
{
  Lab lab(default_policy());
  Day day(lab, 100000);
  REQUIRE(day.run(5000) == 0);  // about an hour: every baseline is learned
  const auto all = profiles();
  const RequestIdentity &frontend = all[0].who;
  const RequestIdentity &batch = all[1].who;
  const RequestIdentity &reports = all[2].who;

  SUBCASE("bound to its workload: blocked on the first request")
  {
    const Decision d = lab.request(steal(frontend, batch, BindingVerdict::violation), "GET", "/orders/4711");
    CHECK(d.action == Action::block);
    CHECK(has_signal(d, "binding"));
    CHECK(d.enforced);
    CHECK(d.block_scope == BlockScope::identity);
    CHECK(d.source_identity_name == "batch");
  }
  SUBCASE("unbound: blocked within 5 requests through roaming and novelty")
  {
    const auto thief = steal(reports, batch, BindingVerdict::not_applicable);
    int blocked_at = -1;
    for (int i = 0; i < 5 && blocked_at < 0; ++i) {
      lab.clock.advance_ms(300);
      const Decision d = lab.request(thief, "GET", "/reports/" + std::to_string(900 + i), 200, "reports");
      if (d.action == Action::block) {
        blocked_at = i;
        CHECK(has_signal(d, "roaming"));
        CHECK(has_signal(d, "novelty"));
      }
    }
    CHECK(blocked_at >= 0);
    CHECK(blocked_at < 5);
  }
}

TEST_CASE("endpoint scanning is challenged, then blocked")
{
  Lab lab(default_policy());
  Day day(lab, 100000);
  REQUIRE(day.run(5000) == 0);
  const RequestIdentity batch = profiles()[1].who;
  std::vector<Action> actions;
  for (int i = 0; i < 40; ++i) {
    lab.clock.advance_ms(200);
    actions.push_back(lab.request(batch, "GET", "/probe-" + std::to_string(i) + "/x", 404).action);
  }
  const auto first_refusal =
      std::find_if(actions.begin(), actions.end(), [](Action a) { return a != Action::allow; });
  const auto first_block = std::find(actions.begin(), actions.end(), Action::block);
  REQUIRE(first_block != actions.end());
  CHECK(first_refusal < first_block);
  CHECK(std::all_of(first_block, actions.end(), [](Action a) { return a == Action::block; }));
  CHECK(first_block - actions.begin() < 10);
}

TEST_CASE("observe mode logs the same decisions and enforces none")
{
  Lab enforce(default_policy());
  Lab observe(observe_policy());
  Day enforce_day(enforce, 100000);
  Day observe_day(observe, 100000);
  REQUIRE(enforce_day.run(5000) == 0);
  REQUIRE(observe_day.run(5000) == 0);
  const auto all = profiles();
  auto attack = [&](Lab &lab) {
    std::vector<Decision> out;
    out.push_back(lab.request(steal(all[0].who, all[1].who, BindingVerdict::violation), "GET", "/orders/1"));
    for (int i = 0; i < 30; ++i) {
      lab.clock.advance_ms(200);
      out.push_back(lab.request(all[4].who, "GET", "/scan-" + std::to_string(i), 404, "catalog"));
    }
    return out;
  };
  const auto enforced = attack(enforce);
  const auto observed = attack(observe);
  REQUIRE(enforced.size() == observed.size());
  int would_have = 0;
  for (std::size_t i = 0; i < enforced.size(); ++i) {
    INFO("request " << i);
    CHECK(observed[i].action == enforced[i].action);
    CHECK(observed[i].score == enforced[i].score);
    CHECK(enforced[i].enforced);
    CHECK_FALSE(observed[i].enforced);
    CHECK(agent::to_verdict(observed[i]).kind == HookVerdict::Kind::forward);
    would_have += observed[i].action != Action::allow;
  }
  CHECK(would_have > 10);
  CHECK(observe.engine.stats().unenforced ==
        observe.engine.stats().decisions[0] + observe.engine.stats().decisions[1] +
            observe.engine.stats().decisions[2] + observe.engine.stats().decisions[3]);
}
