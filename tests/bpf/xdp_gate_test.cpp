// XDP gate through BPF_PROG_TEST_RUN: a fixture table of crafted packets, expected verdicts and
// expected counter deltas (Katran style).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <riskgate/abi.h>

#include "xdp_gate.skel.h"

namespace {

std::vector<unsigned char> ipv4_tcp_syn(const char *src, const char *dst, unsigned short dport)
{
  std::vector<unsigned char> pkt(sizeof(ethhdr) + sizeof(iphdr) + sizeof(tcphdr), 0);
  auto *eth = reinterpret_cast<ethhdr *>(pkt.data());
  eth->h_proto = htons(ETH_P_IP);
  auto *ip = reinterpret_cast<iphdr *>(pkt.data() + sizeof(ethhdr));
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = IPPROTO_TCP;
  ip->tot_len = htons(sizeof(iphdr) + sizeof(tcphdr));
  inet_pton(AF_INET, src, &ip->saddr);
  inet_pton(AF_INET, dst, &ip->daddr);
  auto *tcp = reinterpret_cast<tcphdr *>(pkt.data() + sizeof(ethhdr) + sizeof(iphdr));
  tcp->source = htons(40000);
  tcp->dest = htons(dport);
  tcp->doff = 5;
  tcp->syn = 1;
  return pkt;
}

std::vector<unsigned char> truncated(std::vector<unsigned char> pkt, size_t size)
{
  pkt.resize(size);
  return pkt;
}

__u64 counter(const xdp_gate *skel, __u32 reason)
{
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<__u64> per_cpu(static_cast<size_t>(ncpu));
  REQUIRE(bpf_map_lookup_elem(bpf_map__fd(skel->maps.rg_counters), &reason, per_cpu.data()) == 0);
  __u64 sum = 0;
  for (auto v : per_cpu)
    sum += v;
  return sum;
}

struct Fixture {
  std::string name;
  std::vector<unsigned char> packet;
  __u32 verdict;
  std::map<__u32, __u64> counter_delta;
};

}  // namespace

TEST_CASE("xdp gate: verdicts and counters for crafted packets")
{
  xdp_gate *skel = xdp_gate__open_and_load();
  REQUIRE_MESSAGE(skel != nullptr, "xdp_gate failed to load through the verifier");

  const Fixture fixtures[] = {
      {"ipv4 tcp syn passes", ipv4_tcp_syn("10.1.0.2", "10.1.0.1", 80), XDP_PASS, {{RG_R_XDP_PASS, 1}}},
      {"truncated ipv4 header passes as malformed", truncated(ipv4_tcp_syn("10.1.0.2", "10.1.0.1", 80), 18), XDP_PASS,
       {{RG_R_XDP_MALFORMED, 1}, {RG_R_XDP_PASS, 0}}},
  };

  for (const auto &f : fixtures) {
    CAPTURE(f.name);
    std::map<__u32, __u64> before;
    for (auto [reason, delta] : f.counter_delta)
      before[reason] = counter(skel, reason);

    std::vector<unsigned char> out(f.packet.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.packet.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(f.packet.size()), .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
    REQUIRE(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.rg_xdp_gate), &opts) == 0);
    CHECK(opts.retval == f.verdict);
    for (auto [reason, delta] : f.counter_delta)
      CHECK_MESSAGE(counter(skel, reason) - before[reason] == delta, "counter ", reason);
  }
  xdp_gate__destroy(skel);
}
