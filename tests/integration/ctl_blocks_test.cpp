// riskgatectl against real pins and attached programs (a child cgroup): block, blocks, unblock,
// conns, identities, stats, status; what the kernel then does; output formats and exit codes.
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <riskgate/common/reasons.h>
#include <riskgate/kernel/datapath.h>
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

using Run = test::Captured;

Run run(const std::string &command)
{
  return test::capture(command);
}

struct CtlLab {
  test::TempPinDir pins;
  test::ScopedCgroup cgroup;
  std::unique_ptr<kernel::Datapath> datapath;
  std::unique_ptr<test::Worker> server, client;
  unsigned short port = 0;

  CtlLab()
  {
    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    config.cgroup = cgroup.path();
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    datapath = std::move(*dp);
    REQUIRE(datapath->maps().put_cgroup(cgroup.id(), 21).ok());
    REQUIRE(datapath->maps().put_identity_name(21, "batch").ok());
    REQUIRE(datapath->maps().put_identity_name(22, "payments").ok());
    server = std::make_unique<test::Worker>(test::Worker::Options{});
    port = server->listen_echo("127.0.0.1");
    client = std::make_unique<test::Worker>(test::Worker::Options{cgroup.path(), ""});
  }
  Run ctl(const std::string &args)
  {
    return run(std::string(RG_BINARY_DIR) + "/riskgatectl --pin-root " + pins.path() +
               " --admin-socket /nonexistent/rgt.sock " + args);
  }
  int connect() { return client->connect("127.0.0.1", port); }
};

}  // namespace

TEST_CASE("riskgatectl block/unblock act in the kernel at once and show in blocks and bpftool")
{
  CtlLab lab;
  REQUIRE(lab.connect() == 0);

  auto blocked = lab.ctl("block --identity batch --reason 'incident 42'");
  CHECK(blocked.code == 0);
  CHECK(blocked.out ==
        "blocked identity batch (21) until unblocked (incident 42)\n"
        "note: riskgated is not running, so this is not in the audit log\n");
  CHECK(lab.connect() == EPERM);

  auto list = lab.ctl("-o json blocks");
  REQUIRE(list.code == 0);
  const auto json = nlohmann::json::parse(list.out);
  REQUIRE(json.size() == 1);
  CHECK(json[0]["scope"] == "identity");
  CHECK(json[0]["identity"] == 21);
  CHECK(json[0]["manual"] == true);
  CHECK(json[0]["expires_in_ms"].is_null());
  auto table = lab.ctl("blocks");
  CHECK(table.out.find("identity  batch (21)  never       operator") != std::string::npos);

  auto dump = run("bpftool map dump pinned " + lab.pins.path() + "/rg_blk_id");
  CHECK(dump.code == 0);
  CHECK(dump.out.find("\"key\": 21") != std::string::npos);
  CHECK(dump.out.find("\"flags\": 1") != std::string::npos);

  auto unblocked = lab.ctl("unblock --identity 21");
  CHECK(unblocked.code == 0);
  CHECK(unblocked.out.starts_with("unblocked identity batch (21)\n"));
  CHECK(lab.connect() == 0);
  // No agent runs here (the admin socket is absent), and the grace is still set, in the pins.
  const auto grace = lab.datapath->maps().grace("identity 21");
  REQUIRE(grace.ok());
  REQUIRE(grace->has_value());
  CHECK(**grace > kernel::monotonic_now_ns() + 9 * 60'000'000'000ull);
  CHECK(lab.ctl("unblock --identity batch").out == "identity batch (21) was not blocked\n");

  // A TTL ends in the kernel, with nothing in userspace running.
  CHECK(lab.ctl("block --pair batch,0 --ttl 1s").code == 0);
  CHECK(lab.ctl("block --ip 10.99.0.0/16 --ttl 10m").code == 0);
  auto both = nlohmann::json::parse(lab.ctl("-o json blocks").out);
  CHECK(both.size() == 2);
  CHECK(test::eventually([&] { return lab.connect() == 0; }, 3000));
  auto after = nlohmann::json::parse(lab.ctl("-o json blocks").out);
  REQUIRE(after.size() == 1);
  CHECK(after[0]["target"] == "10.99.0.0/16");
}

TEST_CASE("riskgatectl block stops an open connection at its next message; unblock lets it send again")
{
  CtlLab lab;
  REQUIRE(lab.connect() == 0);
  REQUIRE(lab.client->send_echo("before") == 0);
  REQUIRE(lab.ctl("block --identity batch").code == 0);
  CHECK(lab.client->send_echo("during") == EACCES);
  REQUIRE(lab.ctl("unblock --identity batch").code == 0);
  CHECK(lab.client->send_echo("after") == 0);
}

TEST_CASE("riskgatectl conns, identities, stats and status read the pins")
{
  CtlLab lab;
  REQUIRE(lab.connect() == 0);
  auto conns = lab.ctl("-o json conns");
  REQUIRE(conns.code == 0);
  bool tagged = false;
  for (const auto &c : nlohmann::json::parse(conns.out)) tagged = tagged || c["src_identity"] == 21;
  CHECK_MESSAGE(tagged, conns.out);
  CHECK(lab.ctl("conns").out.find("batch (21)") != std::string::npos);

  REQUIRE(lab.ctl("block --identity batch").code == 0);
  CHECK(lab.connect() == EPERM);

  auto identities = nlohmann::json::parse(lab.ctl("-o json identities").out);
  bool found = false;
  for (const auto &i : identities)
    if (i["name"] == "batch") {
      found = true;
      CHECK(i["cgroups"].size() == 1);
    }
  CHECK(found);

  auto stats = nlohmann::json::parse(lab.ctl("-o json stats").out);
  CHECK(stats.contains(reason_name(RG_R_CONNECT_DENY_IDENTITY)));
  CHECK(stats[reason_name(RG_R_CONNECT_DENY_IDENTITY)] >= 1);

  auto status = lab.ctl("-o json status");
  REQUIRE(status.code == 0);
  const auto s = nlohmann::json::parse(status.out);
  CHECK(s["agent"]["up"] == false);
  CHECK(s["links"].size() >= 3);
  bool blk_id_counted = false;
  for (const auto &m : s["maps"])
    if (m["name"] == "rg_blk_id")
      blk_id_counted = m["entries"] == 1;
  CHECK(blk_id_counted);
  auto human = lab.ctl("status");
  CHECK(human.out.find("agent: down") != std::string::npos);
  CHECK(human.out.find("VERIFIED INSNS") != std::string::npos);
}

TEST_CASE("riskgatectl: usage errors exit 2, failures exit 1 and say what to do")
{
  CtlLab lab;
  CHECK(lab.ctl("block").code == 2);
  CHECK(lab.ctl("block --ip 10.0.0.1 --identity batch").code == 2);
  auto ttl = lab.ctl("block --identity batch --ttl soon");
  CHECK(ttl.code == 2);
  CHECK(ttl.out.find("--ttl soon: 'soon' is not a duration") != std::string::npos);
  auto who = lab.ctl("block --identity nobody");
  CHECK(who.code == 1);
  CHECK(who.out.find("known identities are batch, payments") != std::string::npos);
  auto ip = lab.ctl("block --ip 10.0.0.300");
  CHECK(ip.code == 1);
  auto world = lab.ctl("block --identity 0");
  CHECK(world.code == 1);
  CHECK(world.out.find("block by ip instead") != std::string::npos);
  auto nopins = run(std::string(RG_BINARY_DIR) + "/riskgatectl --pin-root /sys/fs/bpf/rgt-none blocks");
  CHECK(nopins.code == 1);
  CHECK(nopins.out.find("riskgated has not run on this node") != std::string::npos);
}

TEST_CASE("riskgatectl block --ttl takes the policy's duration syntax: 1h30m, never a bare number")
{
  CtlLab lab;
  auto blocked = lab.ctl("block --identity batch --ttl 1h30m");
  CHECK(blocked.code == 0);
  CHECK(blocked.out.starts_with("blocked identity batch (21) for 1h30m\n"));
  auto listed = nlohmann::json::parse(lab.ctl("-o json blocks").out);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["expires_in_ms"].get<std::uint64_t>() > 89 * 60'000);
  CHECK(listed[0]["expires_in_ms"].get<std::uint64_t>() <= 90 * 60'000);

  auto bare = lab.ctl("block --identity payments --ttl 90");
  CHECK(bare.code == 2);
  CHECK(bare.out ==
        "riskgatectl: --ttl 90: '90' is not a duration: 90 has no unit; write 90s, 90m, 90h or 90d\n");
  CHECK(nlohmann::json::parse(lab.ctl("-o json blocks").out).size() == 1);
}
