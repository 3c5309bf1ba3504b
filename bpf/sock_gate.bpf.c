/* cgroup socket gate: connect4/connect6 deny a blocked caller identity, destination, pair or port
 * (the application sees EPERM), and rewrite connects to L7-inspected destinations to the local
 * proxy, remembering the original destination; sendmsg4/sendmsg6 deny the same blocks to unconnected
 * UDP datagrams (sendto/sendmsg with an address), which never pass connect; cgroup/getsockopt
 * answers SO_ORIGINAL_DST for redirected connects. The proxy's own cgroup is never redirected nor
 * denied. */
#include "lib/common.h"
#include "lib/addr.h"
#include "lib/counters.h"
#include "lib/sock_addr.h"
#include "lib/socks.h"
#include "lib/workloads.h"

#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80 /* also IP6T_SO_ORIGINAL_DST */
#define RG_LOOPBACK4 0x7f000001

static const struct rg_deny_reasons rg_connect_denials = RG_DENY_REASONS(CONNECT);
static const struct rg_deny_reasons rg_sendmsg_denials = RG_DENY_REASONS(SENDMSG);

/* Returns 1 to redirect (original destination saved in the socket's storage), 0 otherwise. */
static __always_inline int rg_should_redirect(struct bpf_sock_addr *ctx, const struct rg_sock_dst *c,
                                              const struct rg_l7_config *cfg)
{
  if (!cfg || !cfg->proxy_port || ctx->type != 1 /* SOCK_STREAM */)
    return 0;
  if (!(c->dst_flags & RG_IPCACHE_F_L7)) {
    struct rg_port_key key = {.identity = c->dst_identity, .port = c->dport, .proto = IPPROTO_TCP};
    if (!bpf_map_lookup_elem(&rg_l7_dst, &key))
      return 0;
  }
  struct rg_orig_dst_val *orig = bpf_sk_storage_get(&rg_orig_stg, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!orig)
    return 0;
  __builtin_memcpy(orig->addr, c->daddr, RG_IPV6_LEN);
  orig->port = c->dport;
  orig->family = c->family;
  orig->src_identity = c->src_identity;
  orig->cookie = bpf_get_socket_cookie(ctx);
  return 1;
}

/* The gate, then the transparent redirect; returns 1 (allow), 0 (deny) and sets *redirect. */
static __always_inline int rg_connect_verdict(struct bpf_sock_addr *ctx, struct rg_sock_dst *c, int *redirect)
{
  struct rg_l7_config *cfg = rg_l7_config_get();

  *redirect = 0;
  int verdict = rg_sock_addr_gate(ctx, c, cfg, rg_connect_denials);
  if (verdict != RG_GATE_PASS)
    return verdict != RG_GATE_DENY;
  if (rg_should_redirect(ctx, c, cfg)) {
    *redirect = cfg->proxy_port;
    rg_count(RG_R_CONNECT_REDIRECT);
    return 1;
  }
  rg_count(RG_R_CONNECT_ALLOW);
  return 1;
}

SEC("cgroup/connect4")
int rg_connect4(struct bpf_sock_addr *ctx)
{
  struct rg_sock_dst c = {};
  int redirect;

  rg_sock_dst_v4(&c, ctx);
  if (!rg_connect_verdict(ctx, &c, &redirect))
    return 0;
  if (redirect) {
    ctx->user_ip4 = bpf_htonl(RG_LOOPBACK4);
    ctx->user_port = bpf_htons((__u16)redirect);
  }
  return 1;
}

SEC("cgroup/connect6")
int rg_connect6(struct bpf_sock_addr *ctx)
{
  struct rg_sock_dst c = {};
  int redirect;

  rg_sock_dst_v6(&c, ctx);
  if (!rg_connect_verdict(ctx, &c, &redirect))
    return 0;
  if (redirect) {
    /* v4-mapped destinations stay v4 (::ffff:127.0.0.1), native IPv6 goes to ::1. */
    __u32 w2 = ctx->user_ip6[2];
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    if (w2 == bpf_htonl(0x0000ffff)) {
      ctx->user_ip6[3] = bpf_htonl(RG_LOOPBACK4);
    } else {
      ctx->user_ip6[2] = 0;
      ctx->user_ip6[3] = bpf_htonl(1);
    }
    ctx->user_port = bpf_htons((__u16)redirect);
  }
  return 1;
}

/* Datagrams are never redirected: the proxy speaks TCP only. */
static __always_inline int rg_sendmsg_verdict(struct bpf_sock_addr *ctx, struct rg_sock_dst *d)
{
  int verdict = rg_sock_addr_gate(ctx, d, rg_l7_config_get(), rg_sendmsg_denials);
  if (verdict == RG_GATE_PASS)
    rg_count(RG_R_SENDMSG_ALLOW);
  return verdict != RG_GATE_DENY;
}

/* An IPv6 socket's datagram to a v4-mapped address runs sendmsg4 (the kernel hands it to the IPv4
 * path first), so each family's hook sees its own addresses. */
SEC("cgroup/sendmsg4")
int rg_sendmsg4(struct bpf_sock_addr *ctx)
{
  struct rg_sock_dst d = {};

  rg_sock_dst_v4(&d, ctx);
  return rg_sendmsg_verdict(ctx, &d);
}

SEC("cgroup/sendmsg6")
int rg_sendmsg6(struct bpf_sock_addr *ctx)
{
  struct rg_sock_dst d = {};

  rg_sock_dst_v6(&d, ctx);
  return rg_sendmsg_verdict(ctx, &d);
}

/* SO_ORIGINAL_DST on the proxy's accepted socket: its peer is the client's source endpoint. */
SEC("cgroup/getsockopt")
int rg_getsockopt(struct bpf_sockopt *ctx)
{
  struct rg_endpoint_key key = {};
  struct bpf_sock *sk = ctx->sk;
  void *optval = ctx->optval;
  void *optval_end = ctx->optval_end;

  if (ctx->optname != SO_ORIGINAL_DST || !sk)
    return 1;
  if (ctx->level == SOL_IP && sk->family == AF_INET) {
    rg_addr_from_v4(key.addr, sk->dst_ip4);
  } else if (ctx->level == SOL_IPV6 && sk->family == AF_INET6) {
    rg_addr_from_ctx6(key.addr, sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]);
  } else {
    return 1;
  }
  key.port = bpf_ntohs((__u16)sk->dst_port);
  struct rg_orig_dst_val *orig = bpf_map_lookup_elem(&rg_orig_dst, &key);
  if (!orig)
    return 1;

  if (ctx->level == SOL_IP) {
    struct sockaddr_in *out = optval;
    if ((void *)(out + 1) > optval_end)
      return 1;
    out->sin_family = AF_INET;
    out->sin_port = bpf_htons(orig->port);
    __builtin_memcpy(&out->sin_addr.s_addr, orig->addr + 12, 4);
    __builtin_memset(out->__pad, 0, sizeof(out->__pad));
    ctx->optlen = sizeof(*out);
  } else {
    struct sockaddr_in6 *out = optval;
    if ((void *)(out + 1) > optval_end)
      return 1;
    out->sin6_family = AF_INET6;
    out->sin6_port = bpf_htons(orig->port);
    out->sin6_flowinfo = 0;
    __builtin_memcpy(&out->sin6_addr, orig->addr, RG_IPV6_LEN);
    out->sin6_scope_id = 0;
    ctx->optlen = sizeof(*out);
  }
  ctx->retval = 0;
  return 1;
}
