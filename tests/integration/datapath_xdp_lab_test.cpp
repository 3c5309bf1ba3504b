// Network-namespace lab for the XDP gate: a client namespace connects over a veth pair to a server
// on the host end. Blocking the client's IP drops its SYNs at XDP; unblocking lets it through; a
// block with a 1 s TTL ends by itself, with no userspace involved.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

// A client namespace behind a veth pair, an echo server on the host end, and the configuration of a
// datapath whose XDP gate sits on that host end (generic mode when asked).
struct XdpLab {
  explicit XdpLab(bool generic = false)
  {
    config.pin_root = pins.path();
    config.xdp_interfaces = {veth.host_if()};
    config.xdp_generic = generic;
  }
  // The client connects to the server (500 ms timeout): 0 or errno, ETIMEDOUT when SYNs are dropped.
  int connect() { return client.connect(veth.host_ip(), port); }

  test::TempPinDir pins;
  test::ScopedNetns ns;
  test::VethPair veth{ns};
  test::Worker server{{"", ""}};
  test::Worker client{{"", ns.name()}};
  const unsigned short port = server.listen_echo(veth.host_ip());
  kernel::DatapathConfig config;
};

}  // namespace

TEST_CASE("xdp lab: block, unblock and TTL expiry of a client namespace's IP")
{
  XdpLab lab;
  auto &veth = lab.veth;
  auto &client = lab.client;
  auto dp = kernel::Datapath::start(lab.config);
  REQUIRE_MESSAGE(dp.ok(), dp.error());
  REQUIRE((*dp)->xdp().size() == 1);
  std::printf("xdp on %s: %s%s\n", veth.host_if().c_str(), (*dp)->xdp()[0].native ? "native" : "generic, ",
              (*dp)->xdp()[0].fallback_reason.c_str());
  kernel::PinnedMaps &maps = (*dp)->maps();
  const auto client_ip = *net::parse_prefix(veth.peer_ip());

  REQUIRE(lab.connect() == 0);
  REQUIRE(client.send_echo("before") == 0);

  REQUIRE(maps.ip_blocks().put(client_ip, kernel::block_value(0ms, 1)).ok());
  CHECK(lab.connect() == ETIMEDOUT);  // SYNs dropped: nothing answers
  CHECK((*maps.counters())[RG_R_XDP_DROP_IP] >= 1);

  REQUIRE(*maps.ip_blocks().remove(client_ip));
  CHECK(lab.connect() == 0);
  CHECK(client.send_echo("unblocked") == 0);

  // A /24 block with a 1 s TTL: enforced, then lifted by the kernel's clock alone.
  const std::string peer = veth.peer_ip();
  const auto subnet = net::parse_prefix(peer.substr(0, peer.rfind('.')) + ".0/24");
  REQUIRE_MESSAGE(subnet.ok(), subnet.error());
  REQUIRE(maps.ip_blocks().put(*subnet, kernel::block_value(1000ms, 2)).ok());
  const auto blocked_at = std::chrono::steady_clock::now();
  CHECK(lab.connect() == ETIMEDOUT);
  std::this_thread::sleep_until(blocked_at + 1100ms);
  CHECK(lab.connect() == 0);
  CHECK(client.send_echo("after-ttl") == 0);
}

TEST_CASE("xdp lab: generic mode is reported, and a second start re-adopts the XDP link")
{
  XdpLab lab(true);
  const auto &veth = lab.veth;
  auto first = kernel::Datapath::start(lab.config);
  REQUIRE_MESSAGE(first.ok(), first.error());
  REQUIRE((*first)->xdp().size() == 1);
  CHECK_FALSE((*first)->xdp()[0].native);
  CHECK_FALSE((*first)->xdp()[0].fallback_reason.empty());
  REQUIRE(
      (*first)->maps().ip_blocks().put(*net::parse_prefix(veth.peer_ip()), kernel::block_value(0ms, 3)).ok());
  CHECK(lab.connect() == ETIMEDOUT);

  auto second = kernel::Datapath::start(lab.config);
  REQUIRE_MESSAGE(second.ok(), second.error());
  CHECK((*second)->adopted_maps());
  CHECK((*second)->adopted_links() == 2);  // sk_msg and the XDP link, updated in place
  CHECK(lab.connect() == ETIMEDOUT);
  REQUIRE(*(*second)->maps().ip_blocks().remove(*net::parse_prefix(veth.peer_ip())));
  CHECK(lab.connect() == 0);
}
