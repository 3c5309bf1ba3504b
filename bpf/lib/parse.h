/* Defensive packet parsing for XDP: every header is bounds-checked against data_end before it is
 * read; anything unexpected reports "malformed" and the caller passes the packet to the stack. */
#ifndef RG_BPF_PARSE_H
#define RG_BPF_PARSE_H

#include "lib/common.h"
#include "lib/addr.h"

#define RG_MAX_VLAN 2
#define RG_MAX_IPV6_EXT 4
#define RG_IPV6_HOPOPTS 0
#define RG_IPV6_ROUTING 43
#define RG_IPV6_FRAGMENT 44
#define RG_IPV6_DSTOPTS 60
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

struct rg_pkt {
  __u8 saddr[RG_IPV6_LEN];
  __u8 daddr[RG_IPV6_LEN];
  __u16 sport; /* host byte order, 0 when not TCP/UDP or not the first fragment */
  __u16 dport;
  __u8 proto;
  __u8 is_ip;   /* 0: not IPv4/IPv6 (ARP, ...): nothing to check */
  __u8 tcp_syn; /* SYN without ACK: a new connection */
};

struct rg_vlan_hdr {
  __be16 tci;
  __be16 proto;
};

/* Returns 0 on success (pkt filled), -1 when malformed. */
static __always_inline int rg_parse(void *data, void *data_end, struct rg_pkt *pkt)
{
  struct ethhdr *eth = data;
  void *cursor;
  __u16 proto;

  if ((void *)(eth + 1) > data_end)
    return -1;
  proto = eth->h_proto;
  cursor = eth + 1;
#pragma unroll
  for (int i = 0; i < RG_MAX_VLAN; i++) {
    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
      break;
    struct rg_vlan_hdr *vlan = cursor;
    if ((void *)(vlan + 1) > data_end)
      return -1;
    proto = vlan->proto;
    cursor = vlan + 1;
  }

  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = cursor;
    if ((void *)(ip + 1) > data_end || ip->ihl < 5 || ip->version != 4)
      return -1;
    if ((void *)ip + ip->ihl * 4 > data_end)
      return -1;
    rg_addr_from_v4(pkt->saddr, ip->saddr);
    rg_addr_from_v4(pkt->daddr, ip->daddr);
    pkt->proto = ip->protocol;
    pkt->is_ip = 1;
    if (ip->frag_off & bpf_htons(IP_OFFSET))
      return 0; /* later fragment: no L4 header */
    cursor = (void *)ip + ip->ihl * 4;
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = cursor;
    if ((void *)(ip6 + 1) > data_end)
      return -1;
    if ((ip6->version) != 6)
      return -1;
    __builtin_memcpy(pkt->saddr, &ip6->saddr, RG_IPV6_LEN);
    __builtin_memcpy(pkt->daddr, &ip6->daddr, RG_IPV6_LEN);
    pkt->proto = ip6->nexthdr;
    pkt->is_ip = 1;
    cursor = ip6 + 1;
    /* Extension headers are walked (a bounded number), so that one cannot hide the TCP header -
     * and with it port blocks and the SYN budget - behind a hop-by-hop option. */
#pragma unroll
    for (int i = 0; i < RG_MAX_IPV6_EXT; i++) {
      __u8 next = pkt->proto;
      if (next != RG_IPV6_HOPOPTS && next != RG_IPV6_ROUTING && next != RG_IPV6_DSTOPTS &&
          next != RG_IPV6_FRAGMENT)
        break;
      struct ipv6_opt_hdr *ext = cursor;
      if ((void *)(ext + 1) > data_end)
        return -1;
      if (next == RG_IPV6_FRAGMENT) {
        struct frag_hdr *frag = cursor;
        if ((void *)(frag + 1) > data_end)
          return -1;
        pkt->proto = frag->nexthdr;
        if (frag->frag_off & bpf_htons(0xFFF8))
          return 0; /* later fragment: no L4 header */
        cursor = frag + 1;
      } else {
        pkt->proto = ext->nexthdr;
        cursor = (void *)ext + (ext->hdrlen + 1) * 8;
      }
    }
  } else {
    return 0;
  }

  if (pkt->proto == IPPROTO_TCP) {
    struct tcphdr *tcp = cursor;
    if ((void *)(tcp + 1) > data_end)
      return -1;
    pkt->sport = bpf_ntohs(tcp->source);
    pkt->dport = bpf_ntohs(tcp->dest);
    pkt->tcp_syn = tcp->syn && !tcp->ack;
  } else if (pkt->proto == IPPROTO_UDP) {
    struct udphdr *udp = cursor;
    if ((void *)(udp + 1) > data_end)
      return -1;
    pkt->sport = bpf_ntohs(udp->source);
    pkt->dport = bpf_ntohs(udp->dest);
  }
  return 0;
}

#endif
