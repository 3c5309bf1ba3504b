// Unconnected UDP through the real datapath: three workloads in child cgroups of a governed parent
// send datagrams with sendto() to a UDP receiver. A block refuses exactly the datagrams it covers
// (EPERM, nothing arrives) while the others keep arriving, counted by reason and reported as events;
// removing the block restores the sends. (cgroup sock_addr programs have no BPF_PROG_TEST_RUN on this
// kernel, ENOTSUPP, so real sockets are the only way to run sendmsg4/6.)
#include <doctest/doctest.h>

#include <netinet/in.h>

#include <cerrno>
#include <thread>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/events.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

constexpr IdentityId kClient = 11, kServer = 12, kOther = 13;
const char *const kServerIp = "127.0.0.12";     // the server's address, known to the ipcache
const char *const kElsewhereIp = "127.0.0.14";  // also the server's receiver, but unknown: world

struct UdpLab : test::GovernedWorkloads {
  test::ScopedCgroup other{parent, "other"};
  std::unique_ptr<kernel::Datapath> datapath;
  // One process per workload cgroup (declared after the cgroups, so they go first).
  test::Worker server_proc{{server.path(), ""}};
  test::Worker client_proc{{client.path(), ""}};
  test::Worker other_proc{{other.path(), ""}};
  unsigned short port = 0;  // server_proc's receiver on kServerIp

  UdpLab()
  {
    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    config.cgroup = parent.path();
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    datapath = std::move(*dp);
    auto synced = maps().sync_identities({
        {kClient, "client", {client.id()}, {}},
        {kServer, "server", {server.id()}, {*net::parse_prefix(kServerIp)}},
        {kOther, "other", {other.id()}, {}},
    });
    REQUIRE_MESSAGE(synced.ok(), synced.error());
    port = server_proc.listen_udp(kServerIp);
  }
  kernel::PinnedMaps &maps() { return datapath->maps(); }
  std::uint64_t counter(rg_reason reason) { return (*maps().counters())[reason]; }
  // Whether `count` datagrams starting with `prefix` reached the server.
  bool arrived(const std::string &prefix, int count)
  {
    return test::eventually([&] { return server_proc.datagrams_received(prefix) == count; });
  }
};

// What one sender's run of datagrams got back from sendto().
struct Sent {
  int ok = 0;
  int refused = 0;  // EPERM
  int other = 0;    // any other error
};

Sent send_run(test::Worker &sender, const std::string &ip, unsigned short port, const std::string &prefix,
              int n)
{
  Sent sent;
  for (int i = 0; i < n; ++i) {
    const int err = sender.send_datagram(ip, port, prefix + std::to_string(i));
    (err == 0 ? sent.ok : err == EPERM ? sent.refused : sent.other) += 1;
  }
  return sent;
}

}  // namespace

TEST_CASE("sendmsg gate: an identity block refuses that identity's datagrams while another's keep arriving")
{
  UdpLab lab;
  REQUIRE(lab.client_proc.send_datagram(kServerIp, lab.port, "warm-client") == 0);
  REQUIRE(lab.other_proc.send_datagram(kServerIp, lab.port, "warm-peer") == 0);
  REQUIRE(lab.arrived("warm-", 2));
  CHECK(lab.counter(RG_R_SENDMSG_ALLOW) == 2);

  std::vector<rg_event> events;
  auto reader = kernel::EventReader::open(lab.pins.path(), [&](const rg_event &ev) { events.push_back(ev); });
  REQUIRE(reader.ok());
  REQUIRE(lab.maps().identity_blocks().put(kClient, kernel::block_value(0ms, 101)).ok());

  // Both senders at once, to the same receiver: only the blocked one is refused.
  constexpr int kRun = 100;
  Sent blocked, open;
  std::thread blocked_sender(
      [&] { blocked = send_run(lab.client_proc, kServerIp, lab.port, "blocked-", kRun); });
  std::thread open_sender([&] { open = send_run(lab.other_proc, kServerIp, lab.port, "open-", kRun); });
  blocked_sender.join();
  open_sender.join();
  CHECK(blocked.refused == kRun);
  CHECK(open.ok == kRun);
  CHECK(lab.arrived("open-", kRun));
  CHECK(lab.server_proc.datagrams_received("blocked-") == 0);
  CHECK(lab.counter(RG_R_SENDMSG_DENY_IDENTITY) == kRun);
  CHECK(lab.counter(RG_R_SENDMSG_ALLOW) == 2 + kRun);
  CHECK(lab.counter(RG_R_CONNECT_DENY_IDENTITY) == 0);

  // Each refusal is an event naming the decision, both ends and the destination.
  REQUIRE((*reader)->poll(100).ok());
  REQUIRE(events.size() == kRun);
  CHECK(events[0].type == RG_EV_SENDMSG_DENY);
  CHECK(events[0].reason == RG_R_SENDMSG_DENY_IDENTITY);
  CHECK(events[0].decision_id == 101);
  CHECK(events[0].src_identity == kClient);
  CHECK(events[0].dst_identity == kServer);
  CHECK(events[0].dport == lab.port);
  CHECK(events[0].cookie != 0);

  REQUIRE(*lab.maps().identity_blocks().remove(kClient));
  CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "unblocked") == 0);
  CHECK(lab.arrived("unblocked", 1));

  // The destination's identity blocked: every caller is refused, riskgated's own cgroup excepted.
  test::ScopedCgroup proxy_cg(lab.parent, "proxy");
  REQUIRE(lab.maps().put_cgroup(proxy_cg.id(), RG_IDENTITY_WORLD, RG_CGROUP_F_PROXY).ok());
  test::Worker proxy({proxy_cg.path(), ""});
  REQUIRE(lab.maps().identity_blocks().put(kServer, kernel::block_value(0ms, 102)).ok());
  CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "to-blocked-server") == EPERM);
  CHECK(lab.other_proc.send_datagram(kServerIp, lab.port, "to-blocked-server") == EPERM);
  CHECK(proxy.send_datagram(kServerIp, lab.port, "from-proxy") == 0);
  CHECK(lab.arrived("from-proxy", 1));
  CHECK(lab.server_proc.datagrams_received("to-blocked-server") == 0);
}

TEST_CASE("sendmsg gate: pair, ip and port blocks refuse exactly the datagrams they cover")
{
  UdpLab lab;
  const unsigned short elsewhere = lab.server_proc.listen_udp(kElsewhereIp);
  const unsigned short second_port = lab.server_proc.listen_udp(kServerIp);

  SUBCASE("pair block")
  {
    REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 201)).ok());
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "pair-blocked") == EPERM);
    CHECK(lab.client_proc.send_datagram(kElsewhereIp, elsewhere, "pair-elsewhere") == 0);
    CHECK(lab.other_proc.send_datagram(kServerIp, lab.port, "pair-peer") == 0);
    CHECK(lab.arrived("pair-elsewhere", 1));
    CHECK(lab.arrived("pair-peer", 1));
    CHECK(lab.server_proc.datagrams_received("pair-blocked") == 0);
    CHECK(lab.counter(RG_R_SENDMSG_DENY_PAIR) == 1);
    REQUIRE(*lab.maps().pair_blocks().remove({kClient, kServer}));
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "pair-unblocked") == 0);
    CHECK(lab.arrived("pair-unblocked", 1));
  }

  SUBCASE("ip block")
  {
    const auto prefix = *net::parse_prefix(std::string(kServerIp) + "/32");
    REQUIRE(lab.maps().ip_blocks().put(prefix, kernel::block_value(0ms, 202)).ok());
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "ip-blocked") == EPERM);
    CHECK(lab.other_proc.send_datagram(kServerIp, lab.port, "ip-blocked") == EPERM);
    CHECK(lab.client_proc.send_datagram(kElsewhereIp, elsewhere, "ip-elsewhere") == 0);
    CHECK(lab.arrived("ip-elsewhere", 1));
    CHECK(lab.server_proc.datagrams_received("ip-blocked") == 0);
    CHECK(lab.counter(RG_R_SENDMSG_DENY_IP) == 2);
    REQUIRE(*lab.maps().ip_blocks().remove(prefix));
    CHECK(lab.other_proc.send_datagram(kServerIp, lab.port, "ip-unblocked") == 0);
    CHECK(lab.arrived("ip-unblocked", 1));
  }

  SUBCASE("port block: UDP only, that port only")
  {
    REQUIRE(
        lab.maps().port_blocks().put({kClient, lab.port, IPPROTO_UDP}, kernel::block_value(0ms, 203)).ok());
    REQUIRE(lab.maps()
                .port_blocks()
                .put({kClient, second_port, IPPROTO_TCP}, kernel::block_value(0ms, 204))
                .ok());
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "port-blocked") == EPERM);
    CHECK(lab.client_proc.send_datagram(kServerIp, second_port, "port-tcp-only") == 0);
    CHECK(lab.other_proc.send_datagram(kServerIp, lab.port, "port-peer") == 0);
    CHECK(lab.arrived("port-tcp-only", 1));
    CHECK(lab.arrived("port-peer", 1));
    CHECK(lab.server_proc.datagrams_received("port-blocked") == 0);
    CHECK(lab.counter(RG_R_SENDMSG_DENY_PORT) == 1);
    REQUIRE(*lab.maps().port_blocks().remove({kClient, lab.port, IPPROTO_UDP}));
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "port-unblocked") == 0);
    CHECK(lab.arrived("port-unblocked", 1));
  }

  SUBCASE("a block with a TTL ends without userspace")
  {
    REQUIRE(lab.maps().identity_blocks().put(kClient, kernel::block_value(300ms, 205)).ok());
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "ttl-blocked") == EPERM);
    std::this_thread::sleep_for(350ms);
    CHECK(lab.client_proc.send_datagram(kServerIp, lab.port, "ttl-ended") == 0);
    CHECK(lab.arrived("ttl-ended", 1));
  }
}

TEST_CASE("sendmsg gate: IPv6 datagrams and v4-mapped ones from an IPv6 socket are gated too")
{
  UdpLab lab;
  REQUIRE(lab.maps().put_ipcache(*net::parse_prefix("::1"), kServer).ok());
  const unsigned short v6_port = lab.server_proc.listen_udp("::1");
  const std::string mapped_ip = std::string("::ffff:") + kServerIp;
  CHECK(lab.client_proc.send_datagram("::1", v6_port, "v6-before") == 0);
  CHECK(lab.client_proc.send_datagram(mapped_ip, lab.port, "mapped-before") == 0);
  CHECK(lab.arrived("v6-before", 1));
  CHECK(lab.arrived("mapped-before", 1));

  REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 301)).ok());
  CHECK(lab.client_proc.send_datagram("::1", v6_port, "v6-blocked") == EPERM);
  CHECK(lab.client_proc.send_datagram(mapped_ip, lab.port, "mapped-blocked") == EPERM);
  CHECK(lab.other_proc.send_datagram("::1", v6_port, "v6-peer") == 0);
  CHECK(lab.arrived("v6-peer", 1));
  CHECK(lab.server_proc.datagrams_received("v6-blocked") == 0);
  CHECK(lab.server_proc.datagrams_received("mapped-blocked") == 0);
  CHECK(lab.counter(RG_R_SENDMSG_DENY_PAIR) == 2);
}
