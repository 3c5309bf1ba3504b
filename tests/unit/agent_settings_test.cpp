// riskgated's settings file: every documented key lands in the options; a typo or a wrong type is
// an error at file:line:column, all of them at once, before anything attaches anywhere.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "agent/agent.h"
#include "support/capture.h"

using namespace riskgate;

namespace {

std::string write_temp(const std::string &text)
{
  const std::string path = "/tmp/rgt-settings-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("settings: every key is read")
{
  const auto path = write_temp(R"(node:
  cgroup: /sys/fs/cgroup/unified/lab
  xdp: [veth0, veth1]
  pinRoot: /sys/fs/bpf/rg
  workers: 3
  admin: {metrics: "127.0.0.1:9500", socket: /run/rg.sock}
  audit: {path: /var/log/rg.jsonl, rotateMB: 5, keep: 2}
policyDir: /etc/rg/policies
identityFile: /etc/rg/identities.yaml
)");
  agent::Options options;
  auto loaded = agent::load_settings(path, options);
  std::remove(path.c_str());
  REQUIRE_MESSAGE(loaded.ok(), loaded.error());
  CHECK(options.cgroup == "/sys/fs/cgroup/unified/lab");
  CHECK(options.xdp_interfaces == std::vector<std::string>{"veth0", "veth1"});
  CHECK(options.pin_root == "/sys/fs/bpf/rg");
  CHECK(options.workers == 3);
  CHECK(options.admin_metrics == "127.0.0.1:9500");
  CHECK(options.admin_socket == "/run/rg.sock");
  CHECK(options.audit_path == "/var/log/rg.jsonl");
  CHECK(options.audit_rotate_mb == 5);
  CHECK(options.audit_keep == 2);
  CHECK(options.policy_dir == "/etc/rg/policies");
  CHECK(options.identity_file == "/etc/rg/identities.yaml");
}

TEST_CASE("settings: typos, repeated keys and wrong types are refused with their positions, all at once")
{
  const auto path = write_temp(
      "node:\n  cgroupp: /x\n  workers: many\n  xdp: [veth0, [veth1]]\npolicyDir: [a]\npolicyDir: /b\n");
  agent::Options options;
  auto loaded = agent::load_settings(path, options);
  std::remove(path.c_str());
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.error().find(path + ":2:3: unknown key 'cgroupp' in node") != std::string::npos);
  CHECK(loaded.error().find(path + ":3:12: workers must be a whole number from 1 to 256") !=
        std::string::npos);
  CHECK(loaded.error().find(path + ":4:16: each entry of xdp must be a string") != std::string::npos);
  CHECK(loaded.error().find(path + ":5:12: policyDir must be a string") != std::string::npos);
  CHECK(loaded.error().find(path + ":6:1: duplicate key 'policyDir' in the settings") != std::string::npos);
}

TEST_CASE("riskgated refuses a broken settings file at file:line:column before it starts anything")
{
  const auto path = write_temp("node:\n  pinRoot: /sys/fs/bpf/rgt-never\n  audit: {path: /tmp/x, kepe: 3}\n");
  const auto ran = test::capture(std::string(RG_BINARY_DIR) + "/riskgated --config " + path);
  std::remove(path.c_str());
  CHECK(ran.code == 2);
  CHECK(ran.out == "riskgated: " + path + ":3:25: unknown key 'kepe' in node.audit (did you mean 'keep'?)\n");
}
