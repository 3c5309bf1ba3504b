// Unconnected UDP through the real datapath: three workloads in child cgroups of a governed parent
// send datagrams with sendto() to a UDP receiver. A block refuses exactly the datagrams it covers
// (EPERM, nothing arrives) while the others keep arriving, counted by reason and reported as events;
// removing the block restores the sends. (cgroup sock_addr programs have no BPF_PROG_TEST_RUN on this
// kernel, ENOTSUPP, so real sockets are the only way to run sendmsg4/6.)
#include <doctest/doctest.h>

#include <netinet/in.h>

#include <cerrno>
#include <thread>
#include <vector>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/events.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using riskgate::kernel::PortKey;
using namespace std::chrono_literals;

namespace {

constexpr IdentityId kClient = 11, kServer = 12, kOther = 13;
const char *const kServerIp = "127.0.0.12";     // the server's address, known to the ipcache
const char *const kElsewhereIp = "127.0.0.14";  // also the server's receiver, but unknown: world

struct UdpLab : test::GovernedWorkloads {
  test::ScopedCgroup other{parent, "other"};
  std::unique_ptr<kernel::Datapath> datapath = start_datapath();
  // One process per workload cgroup (declared after the cgroups, so they go first).
  test::Worker server_proc{{server.path(), ""}};
  test::Worker client_proc{{client.path(), ""}};
  test::Worker other_proc{{other.path(), ""}};
  unsigned short port = 0;  // server_proc's receiver on kServerIp

  UdpLab()
  {
    for (const auto &[cgroup, identity] : {std::pair{&client, kClient}, {&server, kServer}, {&other, kOther}})
      REQUIRE(maps().put_cgroup(cgroup->id(), identity).ok());
    REQUIRE(maps().put_ipcache(*net::parse_prefix(kServerIp), kServer).ok());
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

// A datagram's sender and destination.
struct Route {
  test::Worker &sender;
  std::string ip;
  unsigned short port;
};

// With a block in place: each `covered` datagram is refused with EPERM and never arrives, each
// `uncovered` one arrives. `tag` starts the texts of this check's datagrams.
void check_refuses(UdpLab &lab, const std::string &tag, const std::vector<Route> &covered,
                   const std::vector<Route> &uncovered)
{
  for (std::size_t i = 0; i < covered.size(); ++i) {
    CAPTURE(i);
    CHECK(covered[i].sender.send_datagram(covered[i].ip, covered[i].port,
                                          tag + "-refused-" + std::to_string(i)) == EPERM);
  }
  for (std::size_t i = 0; i < uncovered.size(); ++i) {
    CAPTURE(i);
    CHECK(uncovered[i].sender.send_datagram(uncovered[i].ip, uncovered[i].port,
                                            tag + "-passed-" + std::to_string(i)) == 0);
  }
  CHECK(lab.arrived(tag + "-passed-", static_cast<int>(uncovered.size())));
  CHECK(lab.server_proc.datagrams_received(tag + "-refused-") == 0);
}

// Once the block is gone, `route` carries datagrams again.
void check_restored(UdpLab &lab, const std::string &tag, const Route &route)
{
  CHECK(route.sender.send_datagram(route.ip, route.port, tag + "-restored") == 0);
  CHECK(lab.arrived(tag + "-restored", 1));
}

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
  check_restored(lab, "identity", {lab.client_proc, kServerIp, lab.port});

  // The destination's identity blocked: every caller is refused, riskgated's own cgroup excepted.
  test::ScopedCgroup proxy_cg(lab.parent, "proxy");
  REQUIRE(lab.maps().put_cgroup(proxy_cg.id(), RG_IDENTITY_WORLD, RG_CGROUP_F_PROXY).ok());
  test::Worker proxy({proxy_cg.path(), ""});
  REQUIRE(lab.maps().identity_blocks().put(kServer, kernel::block_value(0ms, 102)).ok());
  check_refuses(lab, "to-server",
                {{lab.client_proc, kServerIp, lab.port}, {lab.other_proc, kServerIp, lab.port}},
                {{proxy, kServerIp, lab.port}});
}

TEST_CASE("sendmsg gate: pair, ip and port blocks refuse exactly the datagrams they cover")
{
  UdpLab lab;
  const Route client_to_server{lab.client_proc, kServerIp, lab.port};
  const Route other_to_server{lab.other_proc, kServerIp, lab.port};
  const Route client_elsewhere{lab.client_proc, kElsewhereIp, lab.server_proc.listen_udp(kElsewhereIp)};

  SUBCASE("pair block")
  {
    REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 201)).ok());
    check_refuses(lab, "pair", {client_to_server}, {client_elsewhere, other_to_server});
    CHECK(lab.counter(RG_R_SENDMSG_DENY_PAIR) == 1);
    REQUIRE(*lab.maps().pair_blocks().remove({kClient, kServer}));
    check_restored(lab, "pair", client_to_server);
  }

  SUBCASE("ip block")
  {
    const auto prefix = *net::parse_prefix(std::string(kServerIp) + "/32");
    REQUIRE(lab.maps().ip_blocks().put(prefix, kernel::block_value(0ms, 202)).ok());
    check_refuses(lab, "ip", {client_to_server, other_to_server}, {client_elsewhere});
    CHECK(lab.counter(RG_R_SENDMSG_DENY_IP) == 2);
    REQUIRE(*lab.maps().ip_blocks().remove(prefix));
    check_restored(lab, "ip", other_to_server);
  }

  SUBCASE("port block: UDP only, that port only")
  {
    const Route client_second_port{lab.client_proc, kServerIp, lab.server_proc.listen_udp(kServerIp)};
    const PortKey udp{kClient, lab.port, IPPROTO_UDP}, tcp{kClient, client_second_port.port, IPPROTO_TCP};
    REQUIRE(lab.maps().port_blocks().put(udp, kernel::block_value(0ms, 203)).ok());
    REQUIRE(lab.maps().port_blocks().put(tcp, kernel::block_value(0ms, 204)).ok());
    check_refuses(lab, "port", {client_to_server}, {client_second_port, other_to_server});
    CHECK(lab.counter(RG_R_SENDMSG_DENY_PORT) == 1);
    REQUIRE(*lab.maps().port_blocks().remove(udp));
    check_restored(lab, "port", client_to_server);
  }

  SUBCASE("a block with a TTL ends without userspace")
  {
    REQUIRE(lab.maps().identity_blocks().put(kClient, kernel::block_value(300ms, 205)).ok());
    check_refuses(lab, "ttl", {client_to_server}, {});
    std::this_thread::sleep_for(350ms);
    check_restored(lab, "ttl", client_to_server);
  }
}

TEST_CASE("sendmsg gate: IPv6 datagrams and v4-mapped ones from an IPv6 socket are gated too")
{
  UdpLab lab;
  REQUIRE(lab.maps().put_ipcache(*net::parse_prefix("::1"), kServer).ok());
  const unsigned short v6_port = lab.server_proc.listen_udp("::1");
  // An IPv6 socket sending to a v4-mapped address takes the IPv4 path: sendmsg4 judges it.
  const Route client_v6{lab.client_proc, "::1", v6_port};
  const Route client_mapped{lab.client_proc, std::string("::ffff:") + kServerIp, lab.port};
  check_refuses(lab, "open", {}, {client_v6, client_mapped});

  REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 301)).ok());
  check_refuses(lab, "v6", {client_v6, client_mapped}, {{lab.other_proc, "::1", v6_port}});
  CHECK(lab.counter(RG_R_SENDMSG_DENY_PAIR) == 2);
}
