// IdentityFeed: a changed registry reaches the sink once, an unchanged one not again, and a broken
// source is reported once while the previous state stays in force.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <riskgate/identity/feed.h>
#include "support/workloads.h"

using namespace riskgate;
using namespace riskgate::identity;
namespace fs = std::filesystem;

TEST_CASE("the feed hands changed snapshots to the sink and reports each broken source once")
{
  char tmpl[] = "/tmp/rgt-feed-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const fs::path root = tmpl;
  auto registry = test::frontend_registry(root);
  const std::string static_file = (root / "ids.yaml").string();
  std::ofstream(static_file) << "identities:\n  - name: legacy\n    selectors:\n      - cidr: 10.9.0.0/16\n";
  registry->set_static_file(static_file);

  std::mutex mu;                    // the sink runs on the feed's thread at the end
  std::vector<std::size_t> synced;  // cgroup ids of frontend per sink call
  auto last = [&] {
    std::lock_guard lock(mu);
    return synced.back();
  };
  std::vector<std::string> logged;
  IdentityFeedOptions options;
  options.interval = std::chrono::milliseconds(20);
  IdentityFeed feed(
      registry, nullptr,
      [&](const RegistrySnapshot &snap) -> Result<void> {
        std::lock_guard lock(mu);
        synced.push_back(snap.find("frontend")->cgroup_ids.size());
        return {};
      },
      options, [&](const std::string &message) { logged.push_back(message); });

  REQUIRE(*feed.run_once() == true);
  CHECK(synced == std::vector<std::size_t>{1});
  CHECK(registry->snapshot()->find("legacy") != nullptr);
  CHECK(*feed.run_once() == false);  // nothing changed: the kernel is not rewritten
  CHECK(synced.size() == 1);

  fs::create_directories(root / "system.slice/frontend.service-2");
  CHECK(*feed.run_once() == true);
  CHECK(synced.back() == 2);

  std::ofstream(static_file) << "identities: [";
  (void)feed.run_once();
  (void)feed.run_once();
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("previous identities stay in force") != std::string::npos);
  CHECK(registry->snapshot()->find("legacy") != nullptr);

  // The thread runs rounds until stopped.
  fs::create_directories(root / "system.slice/frontend.service-3");
  feed.start();
  for (int i = 0; i < 200 && last() != 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  feed.stop();
  CHECK(synced.back() == 3);
  fs::remove_all(root);
}
