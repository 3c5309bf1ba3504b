/* The block decision of the cgroup sock_addr hooks (connect4/6, sendmsg4/6), one for all four: the
 * caller is the current task's cgroup (rg_cgroups), the destination its address in the ipcache;
 * identity, pair, ip and port blocks are checked in that order, and riskgated's own cgroup is never
 * denied. Each hook names its own counters and event type (struct rg_deny_reasons). */
#ifndef RG_BPF_SOCK_ADDR_H
#define RG_BPF_SOCK_ADDR_H

#include "lib/common.h"
#include "lib/addr.h"
#include "lib/blocks.h"
#include "lib/counters.h"
#include "lib/ipcache.h"
#include "lib/workloads.h"

#define AF_INET 2
#define AF_INET6 10

/* Where a connect() or a datagram goes, and the identities of both ends once gated. */
struct rg_sock_dst {
  __u8 daddr[RG_IPV6_LEN];
  __u16 dport; /* host byte order */
  __u16 family;
  __u32 src_identity;
  __u32 dst_identity;
  __u32 dst_flags; /* RG_IPCACHE_F_* of the destination */
};

/* What one hook reports per kind of block: its event type and a counter reason for each kind. */
struct rg_deny_reasons {
  __u32 event;
  __u32 identity;
  __u32 pair;
  __u32 ip;
  __u32 port;
};

/* A hook's reasons from its name: RG_EV_<HOOK>_DENY and RG_R_<HOOK>_DENY_{IDENTITY,PAIR,IP,PORT}. */
#define RG_DENY_REASONS(HOOK)                                                                               \
  {                                                                                                         \
    .event = RG_EV_##HOOK##_DENY, .identity = RG_R_##HOOK##_DENY_IDENTITY, .pair = RG_R_##HOOK##_DENY_PAIR, \
    .ip = RG_R_##HOOK##_DENY_IP, .port = RG_R_##HOOK##_DENY_PORT,                                           \
  }

enum rg_gate_verdict {
  RG_GATE_DENY = 0,   /* counted and reported; the hook returns 0 (EPERM) */
  RG_GATE_PASS = 1,   /* no block covers it */
  RG_GATE_EXEMPT = 2, /* riskgated's own cgroup: neither denied nor redirected */
};

static __always_inline void rg_sock_dst_v4(struct rg_sock_dst *d, const struct bpf_sock_addr *ctx)
{
  d->family = AF_INET;
  rg_addr_from_v4(d->daddr, ctx->user_ip4);
  d->dport = bpf_ntohs((__u16)ctx->user_port);
}

static __always_inline void rg_sock_dst_v6(struct rg_sock_dst *d, const struct bpf_sock_addr *ctx)
{
  d->family = AF_INET6;
  rg_addr_from_ctx6(d->daddr, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]);
  d->dport = bpf_ntohs((__u16)ctx->user_port);
}

static __always_inline int rg_sock_addr_deny(struct bpf_sock_addr *ctx, const struct rg_sock_dst *d,
                                             __u32 event, __u32 reason, const struct rg_block_val *block)
{
  rg_count(reason);
  struct rg_event *ev = rg_event_reserve(event, reason);
  if (ev) {
    ev->decision_id = block->decision_id;
    ev->cookie = bpf_get_socket_cookie(ctx);
    ev->src_identity = d->src_identity;
    ev->dst_identity = d->dst_identity;
    __builtin_memcpy(ev->daddr, d->daddr, RG_IPV6_LEN);
    ev->dport = d->dport;
    bpf_ringbuf_submit(ev, 0);
  }
  return RG_GATE_DENY;
}

/* Fills the identities of `d` and returns an rg_gate_verdict; a denial is counted and reported
 * under `why`. `cfg` names the proxy's cgroup when it runs outside the governed one. */
static __always_inline int rg_sock_addr_gate(struct bpf_sock_addr *ctx, struct rg_sock_dst *d,
                                             const struct rg_l7_config *cfg, const struct rg_deny_reasons why)
{
  __u64 cgid = bpf_get_current_cgroup_id();
  struct rg_cgroup_val *cg = rg_cgroup_lookup(cgid);
  struct rg_block_val *block;

  if ((cg && (cg->flags & RG_CGROUP_F_PROXY)) || (cfg && cfg->proxy_cgroup_id == cgid))
    return RG_GATE_EXEMPT;
  d->src_identity = cg ? cg->identity : RG_IDENTITY_WORLD;
  struct rg_ipcache_val *dst = rg_ipcache_lookup(d->daddr);
  d->dst_identity = dst ? dst->identity : RG_IDENTITY_WORLD;
  d->dst_flags = dst ? dst->flags : 0;

  if ((block = rg_blocked_identity(d->src_identity)) || (block = rg_blocked_identity(d->dst_identity)))
    return rg_sock_addr_deny(ctx, d, why.event, why.identity, block);
  if ((block = rg_blocked_pair(d->src_identity, d->dst_identity)))
    return rg_sock_addr_deny(ctx, d, why.event, why.pair, block);
  if ((block = rg_blocked_ip(d->daddr)))
    return rg_sock_addr_deny(ctx, d, why.event, why.ip, block);
  if ((block = rg_blocked_port(d->src_identity, d->dport, ctx->protocol)))
    return rg_sock_addr_deny(ctx, d, why.event, why.port, block);
  return RG_GATE_PASS;
}

#endif
