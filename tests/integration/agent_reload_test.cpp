// riskgated's policy lifecycle as an operator meets it: a file edit is picked up without a restart,
// a broken edit is refused with file:line:column while the running policy stays in force, and
// SIGHUP reloads on demand. Observed through the admin socket, as riskgatectl status sees it.
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>

#include <riskgate/admin/admin.h>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;

namespace {

void write_policy(const std::string &path, int challenge_at)
{
  std::ofstream(path + ".tmp")
      << "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n"
      << "  thresholds: {challenge: " << challenge_at << ", limit: 60, block: 85}\n";
  std::filesystem::rename(path + ".tmp", path);  // as editors and ConfigMaps do: a rename
}

nlohmann::json status(const std::string &socket)
{
  auto reply = admin::request(socket, {{"cmd", "status"}});
  REQUIRE_MESSAGE(reply.ok(), reply.error());
  return *reply;
}

}  // namespace

TEST_CASE("riskgated reloads an edited policy, refuses a broken one and reloads on SIGHUP")
{
  const std::string work = "/tmp/" + test::unique_name("rgt-reload");
  std::filesystem::create_directories(work + "/policies");
  const std::string policy = work + "/policies/risk.yaml";
  const std::string socket = work + "/admin.sock";
  const std::string log = work + "/riskgated.log";
  write_policy(policy, 40);

  test::Process agent(
      {std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--listen", "127.0.0.1:0", "--upstream",
       "127.0.0.1:9", "--workers", "1", "--policy-dir", work + "/policies", "--audit-log",
       work + "/decisions.jsonl", "--admin-socket", socket, "--admin-metrics", "off"},
      "", log);
  REQUIRE_MESSAGE(test::eventually(
                      [&] {
                        const auto reply = admin::request(socket, {{"cmd", "status"}});
                        return reply.ok() && (*reply)["agent"] == "up";  // not "starting"
                      },
                      5000),
                  test::read_text(log));
  const std::string first = status(socket)["policy_version"];

  SUBCASE("an edit is installed without a restart")
  {
    write_policy(policy, 45);
    CHECK(test::eventually([&] { return status(socket)["policy_version"] != first; }, 10000));
    CHECK(status(socket)["policy_reloads"]["ok"] == 1);
  }
  SUBCASE("a broken edit is refused with its position and the running policy stays")
  {
    std::ofstream(policy)
        << "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n"
        << "  thresholds: {challenge: 40, limit: 60, block: 85}\n  colour: blue\n";
    CHECK(test::eventually([&] { return status(socket)["policy_reloads"]["failed"] >= 1; }, 10000));
    CHECK(status(socket)["policy_version"] == first);
    CHECK(test::read_text(log).find(policy + ":6:3") != std::string::npos);
  }
  SUBCASE("SIGHUP reloads on demand")
  {
    agent.kill(SIGHUP);
    CHECK(test::eventually([&] { return status(socket)["policy_reloads"]["ok"] == 1; }, 10000));
    CHECK(status(socket)["policy_version"] == first);  // same files, same version
  }

  agent.kill(SIGTERM);
  const auto exited = agent.wait(5000);
  REQUIRE(exited.has_value());
  CHECK(WIFEXITED(*exited));
  CHECK(WEXITSTATUS(*exited) == 0);
  std::filesystem::remove_all(work);
}
