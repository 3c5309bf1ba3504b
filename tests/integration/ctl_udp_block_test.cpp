// The real riskgated governing a test's cgroup, driven by riskgatectl: `riskgatectl block` refuses
// an identity's unconnected UDP datagrams (sendto: EPERM) while another identity's keep arriving;
// the refusals are counted in `riskgatectl stats` and logged as sendmsg_deny events; a SIGKILLed
// riskgated's successor re-adopts the sendmsg links; `riskgatectl unblock` restores the sends, and
// `riskgated --uninstall` detaches the programs.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <riskgate/common/reasons.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;

namespace {

const char *const kServerIp = "127.0.0.23";

// riskgated on the governed parent cgroup, with identities from a policy file as on a real node:
// client, other (two senders) and server (the receiver, also named by its address).
struct AgentLab : test::GovernedWorkloads {
  test::ScopedCgroup other{parent, "other"};
  const std::string work = "/tmp/" + test::unique_name("rgt-udp");
  const std::string pin_root = pins.path() + "/riskgate";
  const std::string log = work + "/riskgated.log";
  std::unique_ptr<test::Process> agent;

  AgentLab()
  {
    std::filesystem::create_directories(work);
    std::ofstream policy(work + "/identities.yaml");
    for (const auto &[name, cgroup, cidr] :
         {std::tuple{"client", &client, ""}, {"server", &server, kServerIp}, {"other", &other, ""}}) {
      policy << "---\napiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: " << name
             << "}\nspec:\n  selectors: [{cgroup: \"" << selector(*cgroup) << "\"}"
             << (*cidr ? std::string(", {cidr: ") + cidr + "/32}" : "") << "]\n";
    }
  }
  ~AgentLab()
  {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }
  std::vector<std::string> riskgated(const std::vector<std::string> &args) const
  {
    std::vector<std::string> argv = {std::string(RG_BINARY_DIR) + "/riskgated", "--pin-root", pin_root};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  void start_agent()
  {
    agent = std::make_unique<test::Process>(
        riskgated({"--cgroup", parent.path(), "--policy-dir", work, "--audit-log", work + "/decisions.jsonl",
                   "--admin-socket", work + "/admin.sock", "--admin-metrics", "off"}),
        "", log);
  }
  test::Captured ctl(const std::string &args) const
  {
    return test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl --pin-root " + pin_root +
                         " --admin-socket " + work + "/admin.sock " + args);
  }
  // Events of this type in the decision log.
  int logged_events(const std::string &type) const
  {
    int n = 0;
    for (const auto &line : test::read_lines(work + "/decisions.jsonl")) {
      const auto json = nlohmann::json::parse(line, nullptr, false);
      n += !json.is_discarded() && json.value("kind", "") == "event" && json.value("type", "") == type;
    }
    return n;
  }
};

}  // namespace

TEST_CASE("riskgated + riskgatectl: a blocked identity's sendto is refused, another's datagrams arrive")
{
  AgentLab lab;
  lab.start_agent();
  REQUIRE_MESSAGE(test::eventually(
                      [&] {
                        return std::filesystem::exists(lab.pin_root + "/links/sendmsg4") &&
                               std::filesystem::exists(lab.pin_root + "/links/sendmsg6") &&
                               lab.ctl("-o json identities").out.find("\"other\"") != std::string::npos;
                      },
                      5000),
                  test::read_text(lab.log));

  test::Worker server({lab.server.path(), ""});
  test::Worker client({lab.client.path(), ""});
  test::Worker other({lab.other.path(), ""});
  const unsigned short port = server.listen_udp(kServerIp);
  const auto arrived = [&](const std::string &prefix, int count) {
    return test::eventually([&] { return server.datagrams_received(prefix) == count; });
  };
  REQUIRE(client.send_datagram(kServerIp, port, "before") == 0);
  REQUIRE(arrived("before", 1));

  auto blocked = lab.ctl("block --identity client --reason udp-flood");
  REQUIRE_MESSAGE(blocked.code == 0, blocked.out);
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    CHECK(client.send_datagram(kServerIp, port, "refused-" + std::to_string(i)) == EPERM);
    CHECK(other.send_datagram(kServerIp, port, "kept-" + std::to_string(i)) == 0);
  }
  CHECK(arrived("kept-", kRounds));
  CHECK(server.datagrams_received("refused-") == 0);
  const auto stats = nlohmann::json::parse(lab.ctl("-o json stats").out);
  CHECK(stats[reason_name(RG_R_SENDMSG_DENY_IDENTITY)] == kRounds);
  CHECK(test::eventually([&] { return lab.logged_events("sendmsg_deny") == kRounds; }, 3000));

  // A successor of a SIGKILLed riskgated keeps the block and takes the sendmsg links over in place
  // (sk_msg, getsockopt, connect4/6, sendmsg4/6, sockops: 7).
  lab.agent->kill(SIGKILL);
  REQUIRE(lab.agent->wait(2000).has_value());
  CHECK(client.send_datagram(kServerIp, port, "refused-unattended") == EPERM);
  lab.start_agent();
  CHECK_MESSAGE(test::eventually(
                    [&] {
                      return test::read_text(lab.log).find("re-adopted existing maps and 7 links") !=
                             std::string::npos;
                    },
                    5000),
                test::read_text(lab.log));
  CHECK(client.send_datagram(kServerIp, port, "refused-after-restart") == EPERM);

  auto unblocked = lab.ctl("unblock --identity client");
  REQUIRE_MESSAGE(unblocked.code == 0, unblocked.out);
  CHECK(client.send_datagram(kServerIp, port, "after-unblock") == 0);
  CHECK(arrived("after-unblock", 1));
  CHECK(server.datagrams_received("refused-") == 0);

  // Uninstall: the links go with the pins, and nothing refuses datagrams any more.
  REQUIRE(lab.ctl("block --identity client").code == 0);
  CHECK(client.send_datagram(kServerIp, port, "refused-before-uninstall") == EPERM);
  lab.agent->kill(SIGTERM);
  REQUIRE(lab.agent->wait(3000).has_value());
  test::Process uninstall(lab.riskgated({"--uninstall"}), "", lab.log);
  const auto done = uninstall.wait(5000);
  REQUIRE(done.has_value());
  CHECK(WEXITSTATUS(*done) == 0);
  CHECK_FALSE(std::filesystem::exists(lab.pin_root));
  CHECK(client.send_datagram(kServerIp, port, "after-uninstall") == 0);
  CHECK(arrived("after-uninstall", 1));
}
