// The XDP program under BPF_PROG_TEST_RUN (Katran style): crafted Ethernet/IP/L4 packets, and the
// datapath on pins of its own whose rg_xdp_gate judges them.
#pragma once

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/events.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"

namespace riskgate::test {

using Packet = std::vector<unsigned char>;

template <class T>
inline void append(Packet &pkt, const T &header)
{
  const std::size_t at = pkt.size();
  pkt.resize(at + sizeof(T));
  std::memcpy(pkt.data() + at, &header, sizeof(T));
}

struct L4 {
  std::uint8_t proto = IPPROTO_TCP;
  std::uint16_t dport = 80;
  bool syn = true;
};

inline void put_l4(Packet &pkt, const L4 &l4)
{
  if (l4.proto == IPPROTO_TCP) {
    tcphdr tcp{};
    tcp.source = htons(40000);
    tcp.dest = htons(l4.dport);
    tcp.doff = 5;
    tcp.syn = l4.syn;
    tcp.ack = !l4.syn;
    append(pkt, tcp);
  } else {
    udphdr udp{};
    udp.source = htons(40000);
    udp.dest = htons(l4.dport);
    udp.len = htons(sizeof(udp));
    append(pkt, udp);
  }
}

inline void put_eth(Packet &pkt, std::uint16_t proto, int vlans)
{
  ethhdr eth{};
  eth.h_proto = htons(vlans > 0 ? ETH_P_8021Q : proto);
  append(pkt, eth);
  for (int i = 0; i < vlans; ++i) {
    const std::array<std::uint16_t, 2> tag = {htons(100), htons(i + 1 < vlans ? ETH_P_8021Q : proto)};
    append(pkt, tag);
  }
}

inline Packet ipv4(const char *src, L4 l4 = {}, int vlans = 0)
{
  Packet pkt;
  put_eth(pkt, ETH_P_IP, vlans);
  iphdr ip{};
  ip.version = 4;
  ip.ihl = 5;
  ip.ttl = 64;
  ip.protocol = l4.proto;
  ip.tot_len = htons(sizeof(iphdr) + sizeof(tcphdr));
  inet_pton(AF_INET, src, &ip.saddr);
  inet_pton(AF_INET, "10.1.0.1", &ip.daddr);
  append(pkt, ip);
  put_l4(pkt, l4);
  return pkt;
}

// IPv6; with hop_by_hop, a hop-by-hop options header (8 bytes of PadN) in front of the L4 header.
inline Packet ipv6(const char *src, L4 l4 = {}, bool hop_by_hop = false)
{
  Packet pkt;
  put_eth(pkt, ETH_P_IPV6, 0);
  ipv6hdr ip{};
  ip.version = 6;
  ip.nexthdr = hop_by_hop ? 0 : l4.proto;
  ip.hop_limit = 64;
  inet_pton(AF_INET6, src, &ip.saddr);
  inet_pton(AF_INET6, "fd00::1", &ip.daddr);
  append(pkt, ip);
  if (hop_by_hop) {
    const std::array<std::uint8_t, 8> hbh = {l4.proto, 0, 1, 4, 0, 0, 0, 0};
    append(pkt, hbh);
  }
  put_l4(pkt, l4);
  return pkt;
}

// The datapath on pins of its own: packets go through its XDP program with BPF_PROG_TEST_RUN, and the
// drop events it sends are collected.
struct XdpGate {
  XdpGate()
  {
    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    auto started = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(started.ok(), started.error());
    dp = std::move(*started);
    prog = dp->program_fd("rg_xdp_gate");
    REQUIRE(prog >= 0);
    auto opened =
        kernel::EventReader::open(pins.path(), [this](const rg_event &ev) { events.push_back(ev); });
    REQUIRE_MESSAGE(opened.ok(), opened.error());
    reader = std::move(*opened);
  }
  kernel::PinnedMaps &maps() { return dp->maps(); }

  // The program's verdict on one packet.
  std::uint32_t run(const Packet &packet)
  {
    Packet out(packet.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(packet.size()),
                .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
    REQUIRE(bpf_prog_test_run_opts(prog, &opts) == 0);
    return opts.retval;
  }

  // Reads what the ring buffer holds into `events`.
  void poll_events() { REQUIRE(reader->poll(0).ok()); }

  TempPinDir pins;
  std::unique_ptr<kernel::Datapath> dp;
  int prog = -1;
  std::vector<rg_event> events;
  std::unique_ptr<kernel::EventReader> reader;
};

}  // namespace riskgate::test
