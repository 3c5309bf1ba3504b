// The fast path as an operator turns it on: a policy's fastPath pair, loaded by riskgated governing a
// child cgroup, makes a real connection between two workloads of that pair go socket to socket;
// riskgatectl lists the pair; removing it from the policy (a hot reload) removes it from the kernel
// and the open connection carries on as plain TCP.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <riskgate/kernel/pinned_maps.h>
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;

namespace {

// Identities `client` and `server` by their cgroups, and a RiskPolicy with these fastPath lines.
void write_policy(const std::string &file, const test::GovernedWorkloads &governed,
                  const std::string &fast_path)
{
  std::string text;
  for (const auto &[name, cgroup] :
       {std::pair{"client", &governed.client}, std::pair{"server", &governed.server}})
    text += fmt::format(
        "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {{name: {}}}\n"
        "spec: {{selectors: [{{cgroup: \"{}\"}}]}}\n---\n",
        name, test::GovernedWorkloads::selector(*cgroup));
  text += "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n" + fast_path;
  std::ofstream(file + ".tmp") << text;
  std::filesystem::rename(file + ".tmp", file);  // as editors and ConfigMaps do: a rename
}

}  // namespace

TEST_CASE("a policy's fastPath pair takes two workloads' connection socket to socket; a reload ends it")
{
  test::GovernedWorkloads governed;
  const test::WorkDir work("rgt-fast");
  const std::string policy = work.path + "/policies/shop.yaml";
  const std::string log = work.path + "/riskgated.log";
  const std::string pin_root = governed.pins.path() + "/riskgate";
  write_policy(policy, governed, "  fastPath:\n    - {from: [client], to: [server]}\n");

  const std::string riskgated = std::string(RG_BINARY_DIR) + "/riskgated";
  test::Process agent({riskgated, "--cgroup", governed.parent.path(), "--pin-root", pin_root, "--policy-dir",
                       work.path + "/policies", "--audit-log", work.path + "/decisions.jsonl",
                       "--admin-socket", work.path + "/admin.sock", "--admin-metrics", "off"},
                      "", log);
  const auto attached = [&] { return std::filesystem::exists(pin_root + "/links/sockops"); };
  REQUIRE_MESSAGE(test::eventually(attached, 5000), test::read_text(log));
  auto maps = kernel::PinnedMaps::open(pin_root);
  REQUIRE_MESSAGE(maps.ok(), maps.error());
  const auto trusted_count = [&] { return maps->trusted().value().size(); };
  REQUIRE_MESSAGE(test::eventually([&] { return trusted_count() == 1; }, 5000), test::read_text(log));

  const auto listed =
      test::capture(fmt::format("{}/riskgatectl --pin-root {} -o json trusted", RG_BINARY_DIR, pin_root));
  REQUIRE_MESSAGE(listed.code == 0, listed.out);
  const auto pairs = nlohmann::json::parse(listed.out);
  REQUIRE(pairs.size() == 1);
  CHECK(pairs[0]["from"] == "client");
  CHECK(pairs[0]["to"] == "server");
  CHECK(pairs[0]["origin"] == "policy");
  const auto names = maps->identity_names().value();
  CHECK(names.at(pairs[0]["from_id"].get<IdentityId>()) == "client");
  CHECK(names.at(pairs[0]["to_id"].get<IdentityId>()) == "server");

  test::Worker server({governed.server.path(), ""});
  test::Worker client({governed.client.path(), ""});
  const unsigned short port = server.listen_echo("127.0.0.1");
  // Messages of one echo round trip (request and echo) that sk_msg redirected.
  const auto redirected_in_echo = [&](const std::string &message) {
    const auto before = maps->counters().value();
    REQUIRE(client.send_echo(message) == 0);
    return maps->counters().value()[RG_R_MSG_REDIRECT] - before[RG_R_MSG_REDIRECT];
  };
  REQUIRE(client.connect("127.0.0.1", port) == 0);
  CHECK(redirected_in_echo("declared") == 2);

  write_policy(policy, governed, "  mode: enforce\n");
  CHECK_MESSAGE(test::eventually([&] { return trusted_count() == 0; }, 10000), test::read_text(log));
  CHECK(redirected_in_echo("withdrawn") == 0);

  agent.kill(SIGTERM);
  const auto exited = agent.wait(5000);
  REQUIRE(exited.has_value());
  CHECK(WIFEXITED(*exited));
  test::Process uninstall({riskgated, "--uninstall", "--pin-root", pin_root}, "", log);
  CHECK(uninstall.wait(5000).has_value());
}
