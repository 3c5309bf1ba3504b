// XDP gate through BPF_PROG_TEST_RUN (Katran style): a fixture table of crafted packets with the map
// state they meet, the expected verdict, counter deltas and drop events.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <riskgate/common/reasons.h>
#include <riskgate/kernel/pinned_maps.h>
#include "bpf/xdp_harness.h"

using namespace riskgate;
using namespace std::chrono_literals;
using namespace riskgate::test;

namespace {

Packet ipv6_hbh(const char *src, L4 l4 = {})
{
  return ipv6(src, l4, true);
}

Packet cut(Packet pkt, std::size_t size)
{
  pkt.resize(size);
  return pkt;
}

// The IPv4 header sits at offset 14, not 4-byte aligned: edit a copy (through the pointer would be UB).
Packet with_ihl(Packet pkt, unsigned ihl)
{
  iphdr ip{};
  std::memcpy(&ip, pkt.data() + sizeof(ethhdr), sizeof ip);
  ip.ihl = ihl & 0xf;
  std::memcpy(pkt.data() + sizeof(ethhdr), &ip, sizeof ip);
  return pkt;
}

net::IpPrefix prefix(const char *text)
{
  return *net::parse_prefix(text);
}

struct Fixture {
  std::string name;
  Packet packet;
  std::function<void(kernel::PinnedMaps &)> setup;  // map state before the packet
  std::uint32_t verdict;
  std::map<std::uint32_t, std::uint64_t> counter_delta;
  std::uint32_t event_reason = 0;  // drop event expected (0: none)
};

}  // namespace

TEST_CASE("xdp gate: verdicts, counters and events for crafted packets")
{
  XdpGate gate;
  kernel::PinnedMaps &maps = gate.maps();
  auto &events = gate.events;

  auto clear = [](kernel::PinnedMaps &m) {
    auto ips = m.ip_blocks().list();
    auto ids = m.identity_blocks().list();
    auto ports = m.port_blocks().list();
    REQUIRE((ips.ok() && ids.ok() && ports.ok()));
    for (const auto &b : *ips) REQUIRE(m.ip_blocks().remove(b.key).ok());
    for (const auto &b : *ids) REQUIRE(m.identity_blocks().remove(b.key).ok());
    for (const auto &b : *ports) REQUIRE(m.port_blocks().remove(b.key).ok());
    REQUIRE(m.set_xdp_config(rg_xdp_config{}).ok());
  };
  auto ipcache = [](kernel::PinnedMaps &m) {
    REQUIRE(m.put_ipcache(prefix("10.2.0.0/16"), 7).ok());
    REQUIRE(m.put_ipcache(prefix("fd00:7::/32"), 7).ok());
  };
  const auto never = kernel::block_value(0ms, 101);
  const std::uint32_t P = XDP_PASS, D = XDP_DROP;

  const Fixture fixtures[] = {
      {"ipv4 tcp syn passes", ipv4("10.1.0.2"), nullptr, P, {{RG_R_XDP_PASS, 1}}},
      {"ipv4 udp passes", ipv4("10.1.0.2", {IPPROTO_UDP, 53, false}), nullptr, P, {{RG_R_XDP_PASS, 1}}},
      {"blocked host ip drops",
       ipv4("10.1.0.2"),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.1.0.2"), never).ok()); },
       D,
       {{RG_R_XDP_DROP_IP, 1}, {RG_R_XDP_PASS, 0}},
       RG_R_XDP_DROP_IP},
      {"blocked cidr drops",
       ipv4("10.3.4.5"),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.3.0.0/16"), never).ok()); },
       D,
       {{RG_R_XDP_DROP_IP, 1}},
       RG_R_XDP_DROP_IP},
      {"address outside the blocked cidr passes",
       ipv4("10.4.0.1"),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.3.0.0/16"), never).ok()); },
       P,
       {{RG_R_XDP_PASS, 1}}},
      {"blocked identity drops",
       ipv4("10.2.9.9"),
       [&](auto &m) {
         ipcache(m);
         REQUIRE(m.identity_blocks().put(7, never).ok());
       },
       D,
       {{RG_R_XDP_DROP_IDENTITY, 1}},
       RG_R_XDP_DROP_IDENTITY},
      {"blocked (identity, port) drops",
       ipv4("10.2.9.9", {IPPROTO_TCP, 443, true}),
       [&](auto &m) {
         ipcache(m);
         REQUIRE(m.port_blocks().put({7, 443, IPPROTO_TCP}, never).ok());
       },
       D,
       {{RG_R_XDP_DROP_PORT, 1}},
       RG_R_XDP_DROP_PORT},
      {"other port of that identity passes",
       ipv4("10.2.9.9", {IPPROTO_TCP, 80, true}),
       [&](auto &m) {
         ipcache(m);
         REQUIRE(m.port_blocks().put({7, 443, IPPROTO_TCP}, never).ok());
       },
       P,
       {{RG_R_XDP_PASS, 1}}},
      {"expired block passes",
       ipv4("10.1.0.2"),
       [&](auto &m) {
         rg_block_val v = never;
         v.expires_ns = kernel::monotonic_now_ns() - 1;
         REQUIRE(m.ip_blocks().put(prefix("10.1.0.2"), v).ok());
       },
       P,
       {{RG_R_XDP_PASS, 1}, {RG_R_XDP_DROP_IP, 0}}},
      {"ipv6 blocked identity drops",
       ipv6("fd00:7::5"),
       [&](auto &m) {
         ipcache(m);
         REQUIRE(m.identity_blocks().put(7, never).ok());
       },
       D,
       {{RG_R_XDP_DROP_IDENTITY, 1}},
       RG_R_XDP_DROP_IDENTITY},
      {"ipv6 blocked prefix drops",
       ipv6("fd00:9::1"),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("fd00:9::/48"), never).ok()); },
       D,
       {{RG_R_XDP_DROP_IP, 1}},
       RG_R_XDP_DROP_IP},
      {"ipv6 passes", ipv6("fd00:9::1"), nullptr, P, {{RG_R_XDP_PASS, 1}}},
      {"ipv6 port block is not hidden behind a hop-by-hop header",
       ipv6_hbh("fd00:7::5", {IPPROTO_TCP, 443, true}),
       [&](auto &m) {
         ipcache(m);
         REQUIRE(m.port_blocks().put({7, 443, IPPROTO_TCP}, never).ok());
       },
       D,
       {{RG_R_XDP_DROP_PORT, 1}},
       RG_R_XDP_DROP_PORT},
      {"ipv6 extension header cut short passes as malformed",
       cut(ipv6_hbh("fd00:7::5"), 14 + 40 + 4),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"vlan-tagged blocked ip drops",
       ipv4("10.1.0.2", {}, 1),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.1.0.2"), never).ok()); },
       D,
       {{RG_R_XDP_DROP_IP, 1}},
       RG_R_XDP_DROP_IP},
      {"double-tagged (QinQ) blocked ip drops",
       ipv4("10.1.0.2", {}, 2),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.1.0.2"), never).ok()); },
       D,
       {{RG_R_XDP_DROP_IP, 1}},
       RG_R_XDP_DROP_IP},
      // (BPF_PROG_TEST_RUN refuses packets shorter than an Ethernet header.)
      {"ethernet header alone passes as malformed",
       cut(ipv4("10.1.0.2"), 14),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}, {RG_R_XDP_PASS, 0}}},
      {"truncated ipv4 header passes as malformed",
       cut(ipv4("10.1.0.2"), 18),
       [&](auto &m) { REQUIRE(m.ip_blocks().put(prefix("10.1.0.2"), never).ok()); },
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"ipv4 ihl < 5 passes as malformed",
       with_ihl(ipv4("10.1.0.2"), 4),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"ipv4 ihl beyond the packet passes as malformed",
       cut(with_ihl(ipv4("10.1.0.2"), 15), 40),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"truncated tcp header passes as malformed",
       cut(ipv4("10.1.0.2"), 14 + 20 + 8),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"truncated ipv6 header passes as malformed",
       cut(ipv6("fd00::2"), 30),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"truncated vlan tag passes as malformed",
       cut(ipv4("10.1.0.2", {}, 1), 16),
       nullptr,
       P,
       {{RG_R_XDP_MALFORMED, 1}}},
      {"non-ip (arp) passes",
       [] {
         Packet p;
         put_eth(p, 0x0806, 0);
         p.resize(42);
         return p;
       }(),
       nullptr,
       P,
       {{RG_R_XDP_PASS, 1}}},
  };

  for (const auto &f : fixtures) {
    CAPTURE(f.name);
    clear(maps);
    if (f.setup)
      f.setup(maps);
    auto before = maps.counters();
    REQUIRE(before.ok());
    events.clear();

    CHECK(gate.run(f.packet) == f.verdict);
    auto after = maps.counters();
    REQUIRE(after.ok());
    for (auto [reason, delta] : f.counter_delta)
      CHECK_MESSAGE((*after)[reason] - (*before)[reason] == delta, "counter ", reason_name(reason));
    gate.poll_events();
    if (f.event_reason) {
      REQUIRE(events.size() == 1);
      CHECK(events[0].type == RG_EV_XDP_DROP);
      CHECK(events[0].reason == f.event_reason);
      CHECK(events[0].decision_id == 101);
    } else {
      CHECK(events.empty());
    }
  }
}

TEST_CASE("xdp gate: per-source SYN budget and event sampling")
{
  XdpGate gate;
  kernel::PinnedMaps &maps = gate.maps();

  // 1 SYN per second, burst 3, one event per 2 drops: from one source, 3 pass and the rest drop.
  REQUIRE(maps.set_xdp_config(rg_xdp_config{1, 3, 2, 0}).ok());
  std::vector<std::uint32_t> verdicts;
  for (int i = 0; i < 7; ++i) verdicts.push_back(gate.run(ipv4("10.5.0.1")));
  CHECK(verdicts ==
        std::vector<std::uint32_t>{XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP, XDP_DROP});
  CHECK(gate.run(ipv4("10.5.0.2")) == XDP_PASS);  // another source has its own bucket
  CHECK(gate.run(ipv4("10.5.0.1", {IPPROTO_TCP, 80, false})) == XDP_PASS);  // not a SYN: established traffic
  gate.poll_events();
  CHECK(gate.events.size() == 2);  // 4 drops, sampled 1 in 2
  CHECK((*maps.counters())[RG_R_XDP_DROP_SYN_RATE] == 4);
}
