/* XDP gate: first look at every packet from a remote peer. Source IP -> identity through the
 * ipcache; drop when the source IP/CIDR, its identity or (identity, destination port) is blocked
 * and not expired, or when the source is over its SYN budget. Anything it cannot parse passes and
 * is counted as malformed: the stack deals with it. Drops are counted per reason and sampled into
 * the ring buffer. */
#include "lib/common.h"
#include "lib/addr.h"
#include "lib/blocks.h"
#include "lib/counters.h"
#include "lib/ipcache.h"
#include "lib/parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct rg_xdp_config);
} rg_xdp_cfg SEC(".maps");

/* LRU is right here: losing a bucket only refills it. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct rg_addr_key);
  __type(value, struct rg_syn_bucket);
} rg_syn SEC(".maps");

/* Token bucket per source address; returns 1 when this SYN is within budget. */
static __always_inline int rg_syn_allowed(const struct rg_xdp_config *cfg, const __u8 *saddr)
{
  struct rg_addr_key key;
  __u64 now = bpf_ktime_get_ns();
  __u64 burst_milli = (__u64)(cfg->syn_burst ? cfg->syn_burst : cfg->syn_rate_per_sec) * 1000;

  __builtin_memcpy(key.addr, saddr, RG_IPV6_LEN);
  struct rg_syn_bucket *bucket = bpf_map_lookup_elem(&rg_syn, &key);
  if (!bucket) {
    struct rg_syn_bucket fresh = {.last_ns = now, .tokens_milli = burst_milli - 1000};
    bpf_map_update_elem(&rg_syn, &key, &fresh, BPF_ANY);
    return 1;
  }
  __u64 elapsed = now - bucket->last_ns;
  __u64 tokens = bucket->tokens_milli + elapsed * cfg->syn_rate_per_sec / 1000000;
  if (tokens > burst_milli)
    tokens = burst_milli;
  bucket->last_ns = now;
  if (tokens < 1000) {
    bucket->tokens_milli = tokens;
    return 0;
  }
  bucket->tokens_milli = tokens - 1000;
  return 1;
}

static __always_inline int rg_drop(struct xdp_md *ctx, const struct rg_xdp_config *cfg,
                                   const struct rg_pkt *pkt, __u32 reason, __u32 identity,
                                   const struct rg_block_val *block)
{
  __u64 n = rg_count(reason);
  __u32 sample = cfg ? cfg->event_sample : 0;
  if (sample > 1 && n % sample != 1)
    return XDP_DROP;
  struct rg_event *ev = rg_event_reserve(RG_EV_XDP_DROP, reason);
  if (!ev)
    return XDP_DROP;
  ev->decision_id = block ? block->decision_id : 0;
  ev->src_identity = identity;
  __builtin_memcpy(ev->saddr, pkt->saddr, RG_IPV6_LEN);
  __builtin_memcpy(ev->daddr, pkt->daddr, RG_IPV6_LEN);
  ev->sport = pkt->sport;
  ev->dport = pkt->dport;
  ev->ifindex = ctx->ingress_ifindex;
  bpf_ringbuf_submit(ev, 0);
  return XDP_DROP;
}

SEC("xdp")
int rg_xdp_gate(struct xdp_md *ctx)
{
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct rg_pkt pkt = {};
  __u32 zero = 0;

  if (rg_parse(data, data_end, &pkt) < 0) {
    rg_count(RG_R_XDP_MALFORMED);
    return XDP_PASS;
  }
  if (!pkt.is_ip) {
    rg_count(RG_R_XDP_PASS);
    return XDP_PASS;
  }
  struct rg_xdp_config *cfg = bpf_map_lookup_elem(&rg_xdp_cfg, &zero);
  struct rg_block_val *block = rg_blocked_ip(pkt.saddr);
  if (block)
    return rg_drop(ctx, cfg, &pkt, RG_R_XDP_DROP_IP, RG_IDENTITY_WORLD, block);

  __u32 identity = rg_ipcache_identity(pkt.saddr);
  if (rg_identity_may_be_blocked(identity)) {
    block = rg_blocked_identity(identity);
    if (block)
      return rg_drop(ctx, cfg, &pkt, RG_R_XDP_DROP_IDENTITY, identity, block);
    if (pkt.dport) {
      block = rg_blocked_port(identity, pkt.dport, pkt.proto);
      if (block)
        return rg_drop(ctx, cfg, &pkt, RG_R_XDP_DROP_PORT, identity, block);
    }
  }
  if (pkt.tcp_syn && cfg && cfg->syn_rate_per_sec && !rg_syn_allowed(cfg, pkt.saddr))
    return rg_drop(ctx, cfg, &pkt, RG_R_XDP_DROP_SYN_RATE, identity, NULL);

  rg_count(RG_R_XDP_PASS);
  return XDP_PASS;
}
