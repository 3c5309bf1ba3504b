/* XDP gate: first look at every packet from a remote peer. Parses defensively (anything it cannot
 * parse passes and is counted as malformed: the stack deals with it) and counts the verdict. */
#include "lib/common.h"
#include "lib/counters.h"

SEC("xdp")
int rg_xdp_gate(struct xdp_md *ctx)
{
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;

  if ((void *)(eth + 1) > data_end) {
    rg_count(RG_R_XDP_MALFORMED);
    return XDP_PASS;
  }
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl < 5) {
      rg_count(RG_R_XDP_MALFORMED);
      return XDP_PASS;
    }
  }
  rg_count(RG_R_XDP_PASS);
  return XDP_PASS;
}
