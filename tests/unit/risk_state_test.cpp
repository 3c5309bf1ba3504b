// The engine's learned state: bounded tables that evict the oldest idle entry first and count it,
// a million tracked tokens within 512 MB, and one token shared by two worker threads is one token.
#include <doctest/doctest.h>

#include <fstream>
#include <list>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include <riskgate/admin/metrics.h>

#include "risk/state.h"
#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

struct Counter {
  int value = 0;
};

std::uint64_t rss_bytes()
{
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoull(line.substr(6)) * 1024;
  return 0;
}

policy::PolicySet plain_policy()
{
  return test::policy_from("apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec: {}\n");
}

}  // namespace

TEST_CASE("a full table evicts the least recently used entry and counts it")
{
  constexpr std::uint64_t s = 1'000'000'000;
  constexpr std::uint64_t idle = 1000 * s;
  risk::LruTable<Counter> table(3);
  bool created = false;
  for (std::uint64_t key : {1, 2, 3})
    table.touch(risk::mix64(key), 10 * s, idle, created).value = static_cast<int>(key);
  CHECK(table.touch(risk::mix64(1), 11 * s, idle, created).value == 1);  // 1 is now the most recent
  CHECK_FALSE(created);
  table.touch(risk::mix64(4), 12 * s, idle, created);
  CHECK(created);
  CHECK(table.size() == 3);
  CHECK(table.evicted() == 1);
  CHECK(table.touch(risk::mix64(3), 13 * s, idle, created).value == 3);
  CHECK(table.touch(risk::mix64(1), 14 * s, idle, created).value == 1);
  CHECK(table.touch(risk::mix64(2), 15 * s, idle, created).value == 0);  // 2 was the one evicted
  CHECK(created);
}

TEST_CASE("a busy entry keeps its place for a second: recency is tracked to within a second")
{
  risk::LruTable<Counter> table(2);
  bool created = false;
  table.touch(1, 0, UINT64_MAX / 2, created);
  table.touch(2, 1, UINT64_MAX / 2, created);
  table.touch(1, 500'000'000, UINT64_MAX / 2, created);  // used, but not moved: 0.5 s since it moved
  table.touch(3, 600'000'000, UINT64_MAX / 2, created);  // evicts 1, the least recently moved
  table.touch(1, 700'000'000, UINT64_MAX / 2, created);
  CHECK(created);
}

TEST_CASE("idle entries expire before live ones are evicted")
{
  risk::LruTable<Counter> table(100);
  bool created = false;
  table.touch(1, 0, 1000, created);
  table.touch(2, 500, 1000, created);
  table.touch(3, 1200, 1000, created);  // 1 idle for 1200 > 1000
  CHECK(table.expired() == 1);
  CHECK(table.evicted() == 0);
  CHECK(table.size() == 2);
}

TEST_CASE("the table agrees with a reference LRU over random operations")
{
  constexpr std::size_t kCapacity = 500;
  risk::LruTable<Counter> table(kCapacity);
  std::list<std::uint64_t> order;  // front = most recent
  std::unordered_map<std::uint64_t, std::pair<std::list<std::uint64_t>::iterator, int>> model;
  std::mt19937_64 random(42);
  for (int op = 0; op < 200000; ++op) {
    // Keys share home slots often: only a few distinct high bits.
    const std::uint64_t key = (random() % 2000) << 20 | (random() % 3);
    bool created = false;
    Counter &c =
        table.touch(key, static_cast<std::uint64_t>(op + 1) * 1'000'000'000, UINT64_MAX / 2, created);
    auto it = model.find(key);
    REQUIRE(created == (it == model.end()));
    if (it == model.end()) {
      if (model.size() == kCapacity) {
        model.erase(order.back());
        order.pop_back();
      }
      order.push_front(key);
      model[key] = {order.begin(), 0};
      c.value = 0;
    } else {
      order.splice(order.begin(), order, it->second.first);
      REQUIRE(c.value == it->second.second);
    }
    c.value = op;
    model[key].second = op;
    REQUIRE(table.size() == model.size());
  }
}

TEST_CASE("a million tracked tokens fit in 512 MB; the oldest are evicted beyond the bound")
{
  risk::EngineOptions options;
  options.max_tokens = 1 << 20;
  const std::uint64_t rss_before = rss_bytes();
  Lab lab(plain_policy(), options);
  constexpr int kTokens = 1'100'000;
  auto who = workload(7, "frontend", "10.0.1.5");
  risk::RiskInput input{&who, "orders", "GET", "/orders/1", std::nullopt, 0, {}, 0, nullptr};
  Decision d;
  for (int i = 0; i < kTokens; ++i) {
    who.token_fingerprint = "fp" + std::to_string(i);
    who.credential = CredentialStatus::valid;
    lab.engine.evaluate(input, d);
    if (i % 4096 == 0)
      lab.clock.advance_ms(1);
  }
  const auto stats = lab.engine.stats();
  const std::uint64_t rss_growth = rss_bytes() - rss_before;
  MESSAGE("tracked " << stats.tracked_tokens << " tokens in " << stats.state_bytes / (1 << 20)
                     << " MiB of tables, RSS +" << rss_growth / (1 << 20) << " MiB");
  CHECK(stats.tracked_tokens == options.max_tokens);
  CHECK(stats.evicted_tokens == kTokens - options.max_tokens);
  CHECK(stats.state_bytes < 512ull << 20);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(rss_growth < 512ull << 20);  // sanitizers' shadow memory would count here
#endif
  // The most recent token is tracked, the very first one was evicted (its roaming history is gone).
  CHECK(stats.tracked_subjects == 1);
}

TEST_CASE("a token used on two worker threads is one token")
{
  risk::EngineOptions options;
  Lab lab(plain_policy(), options);
  const auto a = workload(7, "frontend", "10.0.1.5", "tok-shared");
  const auto b = workload(9, "batch", "10.0.2.9", "tok-shared");
  std::atomic<int> roaming{0};
  auto worker = [&](const RequestIdentity &who) {
    risk::RiskInput input{&who, "orders", "GET", "/orders/1", std::nullopt, 0, {}, 0, nullptr};
    Decision d;
    for (int i = 0; i < 20000; ++i) {
      lab.engine.evaluate(input, d);
      roaming += test::has_signal(d, "roaming");
    }
  };
  std::thread t1(worker, std::cref(a));
  std::thread t2(worker, std::cref(b));
  t1.join();
  t2.join();
  const auto stats = lab.engine.stats();
  CHECK(stats.tracked_tokens == 1);
  CHECK(stats.tracked_subjects == 2);
  CHECK(roaming.load() > 0);
  CHECK(stats.decisions[0] + stats.decisions[1] + stats.decisions[2] + stats.decisions[3] == 40000);
}

TEST_CASE("the state tables' size and evictions are in the metrics")
{
  risk::EngineOptions options;
  options.max_tokens = 64;  // one per shard
  Lab lab(plain_policy(), options);
  metrics::Registry registry;
  lab.engine.watch(registry);
  auto who = workload(7, "frontend", "10.0.1.5");
  risk::RiskInput input{&who, "orders", "GET", "/", std::nullopt, 0, {}, 0, nullptr};
  for (int i = 0; i < 1000; ++i) {
    who.token_fingerprint = fmt::format("t{}", i);
    lab.engine.evaluate(input);
  }
  const std::string text = registry.expose();
  INFO(text);
  CHECK(text.find("riskgate_risk_tracked{table=\"tokens\"} 64") != std::string::npos);
  CHECK(text.find("riskgate_risk_tracked{table=\"subjects\"} 1") != std::string::npos);
  CHECK(text.find("riskgate_risk_evicted_total{table=\"tokens\",reason=\"size\"} 936") != std::string::npos);
  CHECK(text.find("riskgate_risk_state_bytes ") != std::string::npos);
}
