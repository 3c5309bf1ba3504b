// Hot reload: a policy swap under load never mixes two policies in one decision and loses nothing
// learned; a bad policy (file change or explicit reload) keeps the running one and is reported.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/risk_traffic.h"

using namespace riskgate;
using riskgate::test::has_signal;
using riskgate::test::Lab;
using riskgate::test::workload;

namespace {

std::string watch_policy(int weight)
{
  return "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: frontend}\nspec: {}\n---\n"
         "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n"
         "  lists: {watch: {identities: [frontend]}}\n"
         "  signals: {watchlist: {weight: " +
         std::to_string(weight) + "}, novelty: {learn: 0s}}\n";
}

struct TempDir {
  TempDir() : path(std::filesystem::temp_directory_path() / ("rgt-reload-" + std::to_string(::getpid())))
  {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string &name, const std::string &text) const
  {
    // Write then rename, as editors and ConfigMap updates do.
    const auto tmp = path / ("." + name + ".tmp");
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path / name);
  }
  std::filesystem::path path;
};

template <class Pred>
bool eventually(Pred pred)
{
  for (int i = 0; i < 300; ++i) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

const auto kFrontend = workload(7, "frontend", "10.0.1.5", "tok-frontend");

}  // namespace

// The two policies differ only in the watchlist weight (50 / 0); a decision that carries one version
// and the other policy's watchlist contribution would have mixed snapshots.
TEST_CASE("a reload under load swaps atomically: every decision comes from exactly one policy")
{
  const auto challenge = test::policy_from(watch_policy(50));
  const auto allow = test::policy_from(watch_policy(0));
  REQUIRE(challenge.version != allow.version);
  risk::Engine engine(challenge);
  std::atomic<bool> stop{false};
  std::atomic<int> mixed{0};
  std::atomic<int> evaluated{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w)
    workers.emplace_back([&] {
      risk::RiskInput input{&kFrontend, "orders", "GET", "/orders/1", std::nullopt, 0, {}, 0, nullptr};
      Decision d;
      while (!stop.load()) {
        engine.evaluate(input, d);
        const bool from_challenge = d.policy_version == challenge.version;
        if (from_challenge != has_signal(d, "watchlist") ||
            (!from_challenge && d.policy_version != allow.version))
          ++mixed;
        ++evaluated;
      }
    });
  for (int i = 0; i < 200; ++i) {
    engine.install(i % 2 ? challenge : allow);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  for (auto &t : workers) t.join();
  CHECK(mixed.load() == 0);
  CHECK(evaluated.load() > 200);
  CHECK(engine.stats().reloads_ok == 200);
}

TEST_CASE("learned baselines survive a reload")
{
  Lab lab(test::policy_from(watch_policy(0)));
  lab.clock.advance_ms(1000);
  CHECK(has_signal(lab.request(kFrontend, "GET", "/orders/1"), "novelty"));
  CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/2"), "novelty"));
  lab.engine.install(test::policy_from(watch_policy(10)));
  CHECK_FALSE(has_signal(lab.request(kFrontend, "GET", "/orders/3"), "novelty"));
  CHECK(has_signal(lab.request(kFrontend, "GET", "/customers/3"), "novelty"));
}

TEST_CASE("the watcher reloads on file changes and keeps the old policy when the new one is bad")
{
  TempDir dir;
  dir.write("policy.yaml", watch_policy(10));
  auto first = policy::load_path(dir.path.string());
  REQUIRE(first.ok());
  risk::Engine engine(*first.set);
  risk::PolicyWatcher watcher(engine, dir.path.string());
  REQUIRE(watcher.start().ok());
  const std::string v1 = engine.policy_version();

  dir.write("policy.yaml", watch_policy(30));
  REQUIRE(eventually([&] { return engine.policy_version() != v1; }));
  const std::string v2 = engine.policy_version();
  CHECK(engine.stats().reloads_ok == 1);

  dir.write("zz-broken.yaml",
            "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: q}\nspec:\n"
            "  thresholds: {challenge: 90, limit: 60, block: 85}\n");
  REQUIRE(eventually([&] { return engine.stats().reloads_failed >= 1; }));
  CHECK(engine.policy_version() == v2);
  const auto rejection = engine.last_rejection();
  REQUIRE_FALSE(rejection.empty());
  bool located = false;
  for (const auto &d : rejection)
    located = located ||
              policy::to_string(d).find("zz-broken.yaml:5:15: thresholds must rise") != std::string::npos;
  CHECK(located);
  CHECK_FALSE(watcher.reload());  // SIGHUP path: same answer

  std::filesystem::remove(dir.path / "zz-broken.yaml");
  REQUIRE(eventually([&] { return engine.stats().reloads_ok >= 2; }));
  CHECK(engine.policy_version() == v2);  // same content, same version
  CHECK(watcher.reload());
}

TEST_CASE("watching a single file")
{
  TempDir dir;
  dir.write("only.yaml", watch_policy(10));
  dir.write("other.yaml", "not: [a policy");
  const auto path = (dir.path / "only.yaml").string();
  risk::Engine engine(*policy::load_path(path).set);
  risk::PolicyWatcher watcher(engine, path);
  REQUIRE(watcher.start().ok());
  const std::string v1 = engine.policy_version();
  dir.write("other.yaml", "still: [not a policy");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(engine.stats().reloads_ok + engine.stats().reloads_failed == 0);
  dir.write("only.yaml", watch_policy(20));
  REQUIRE(eventually([&] { return engine.policy_version() != v1; }));
}
