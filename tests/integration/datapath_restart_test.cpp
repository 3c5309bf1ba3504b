// riskgated killed with SIGKILL while a block is active: the pinned programs keep enforcing it; a
// restarted riskgated re-adopts the pins (same map contents, links updated in place) and the block
// is still listed, by riskgatectl too; --uninstall removes everything.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include <riskgate/kernel/pinned_maps.h>
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using namespace std::chrono_literals;

TEST_CASE("restart: SIGKILLed riskgated leaves the block enforced; a new one re-adopts it")
{
  test::GovernedWorkloads governed;
  auto &[pins, parent, client_cg, server_cg] = governed;
  const std::string riskgated = std::string(RG_BINARY_DIR) + "/riskgated";
  const std::string pin_root = pins.path() + "/riskgate";
  const std::string work = "/tmp/" + test::unique_name("rgt-restart");
  std::filesystem::create_directories(work);
  const std::string log = work + "/riskgated.log";
  // The identities come from policy, as on a real node: riskgated's registry writes them into the
  // kernel and keeps their ids across the restart.
  const auto relative = &test::GovernedWorkloads::selector;
  std::ofstream(work + "/identities.yaml")
      << "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: client}\nspec:\n  selectors: "
         "[{cgroup: \""
      << relative(client_cg)
      << "\"}]\n---\napiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: server}\n"
      << "spec:\n  selectors: [{cgroup: \"" << relative(server_cg) << "\"}, {cidr: 127.0.0.22/32}]\n";
  const std::vector<std::string> argv = {riskgated,
                                         "--cgroup",
                                         parent.path(),
                                         "--pin-root",
                                         pin_root,
                                         "--policy-dir",
                                         work,
                                         "--audit-log",
                                         work + "/decisions.jsonl",
                                         "--admin-socket",
                                         work + "/admin.sock",
                                         "--admin-metrics",
                                         "off"};

  auto agent = std::make_unique<test::Process>(argv, "", log);
  REQUIRE_MESSAGE(
      test::eventually([&] { return std::filesystem::exists(pin_root + "/links/sockops"); }, 5000),
      test::read_text(log));
  auto maps = kernel::PinnedMaps::open(pin_root);
  REQUIRE_MESSAGE(maps.ok(), maps.error());
  IdentityId client_id = 0, server_id = 0;
  REQUIRE_MESSAGE(test::eventually(
                      [&] {
                        auto names = maps->identity_names();
                        if (!names || names->size() < 2)
                          return false;
                        for (const auto &[id, name] : *names) (name == "client" ? client_id : server_id) = id;
                        return true;
                      },
                      5000),
                  test::read_text(log));

  test::Worker server({server_cg.path(), ""});
  test::Worker client({client_cg.path(), ""});
  const unsigned short port = server.listen_echo("127.0.0.22");
  REQUIRE(client.connect("127.0.0.22", port) == 0);
  REQUIRE(maps->pair_blocks().put({client_id, server_id}, kernel::block_value(0ms, 4242)).ok());
  CHECK(client.connect("127.0.0.22", port) == EPERM);

  agent->kill(SIGKILL);
  REQUIRE(agent->wait(2000).has_value());
  CHECK(client.connect("127.0.0.22", port) == EPERM);  // no riskgated, still enforced

  agent = std::make_unique<test::Process>(argv, "", log);
  REQUIRE(
      test::eventually([&] { return test::read_text(log).find("re-adopted") != std::string::npos; }, 5000));
  CHECK(client.connect("127.0.0.22", port) == EPERM);
  auto pairs = maps->pair_blocks().list();
  REQUIRE(pairs.ok());
  REQUIRE(pairs->size() == 1);
  CHECK((*pairs)[0].value.decision_id == 4242);
  CHECK(maps->identity_names()->at(client_id) == "client");

  agent->kill(SIGTERM);
  auto status = agent->wait(3000);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(client.connect("127.0.0.22", port) == EPERM);  // a clean stop keeps enforcing too

  test::Process uninstall({riskgated, "--uninstall", "--pin-root", pin_root}, "", log);
  auto done = uninstall.wait(5000);
  REQUIRE(done.has_value());
  CHECK(WEXITSTATUS(*done) == 0);
  CHECK_FALSE(std::filesystem::exists(pin_root));
  CHECK(client.connect("127.0.0.22", port) == 0);  // detached: nothing governs the cgroup any more
  std::filesystem::remove_all(work);
}
