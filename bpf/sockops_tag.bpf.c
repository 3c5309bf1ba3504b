/* sockops: tags every TCP socket of the governed cgroup at establishment with {src identity, dst
 * identity, cookie, established time}, lists it in the connection table, records the active side's
 * endpoint (what the proxy looks up for a local client), moves a redirected connect's original
 * destination to the endpoint-keyed map, and inserts the socket into the sockhash so that sk_msg
 * checks every message. Cleans up at TCP_CLOSE. */
#include "lib/common.h"
#include "lib/addr.h"
#include "lib/counters.h"
#include "lib/ipcache.h"
#include "lib/socks.h"
#include "lib/workloads.h"

#define AF_INET 2
#define TCP_CLOSE 7

/* The socket's own cgroup: at PASSIVE_ESTABLISHED (softirq) the current task is unrelated. */
static __always_inline __u64 rg_sock_cgroup_id(struct bpf_sock *sk)
{
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
  if (!tp)
    return 0;
  return BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup, kn, id);
}

static __always_inline void rg_fill_addrs(struct bpf_sock_ops *skops, struct rg_sock_tag *tag)
{
  __u32 family = skops->family;
  __u32 l4 = rg_ctx_u32(skops->local_ip4), r4 = rg_ctx_u32(skops->remote_ip4);
  __u32 l6_0 = rg_ctx_u32(skops->local_ip6[0]), l6_1 = rg_ctx_u32(skops->local_ip6[1]),
        l6_2 = rg_ctx_u32(skops->local_ip6[2]), l6_3 = rg_ctx_u32(skops->local_ip6[3]);
  __u32 r6_0 = rg_ctx_u32(skops->remote_ip6[0]), r6_1 = rg_ctx_u32(skops->remote_ip6[1]),
        r6_2 = rg_ctx_u32(skops->remote_ip6[2]), r6_3 = rg_ctx_u32(skops->remote_ip6[3]);
  if (family == AF_INET) {
    rg_addr_from_v4(tag->local_addr, l4);
    rg_addr_from_v4(tag->remote_addr, r4);
  } else {
    rg_addr_from_ctx6(tag->local_addr, l6_0, l6_1, l6_2, l6_3);
    rg_addr_from_ctx6(tag->remote_addr, r6_0, r6_1, r6_2, r6_3);
  }
  tag->local_port = (__u16)skops->local_port;
  tag->remote_port = (__u16)bpf_ntohl(skops->remote_port);
}

static __always_inline void rg_established(struct bpf_sock_ops *skops, int passive)
{
  struct rg_sock_tag tag = {};
  struct rg_endpoint_key key;
  struct bpf_sock *sk = skops->sk;
  if (!sk)
    return;
  __u64 cgid = rg_sock_cgroup_id(sk);
  struct rg_cgroup_val *cg = rg_cgroup_lookup(cgid);

  tag.cookie = bpf_get_socket_cookie(skops);
  tag.established_ns = bpf_ktime_get_ns();
  tag.src_identity = cg ? cg->identity : RG_IDENTITY_WORLD;
  tag.verdict = RG_R_SOCK_TAGGED;
  tag.flags = passive ? RG_SOCK_F_PASSIVE : 0;
  rg_fill_addrs(skops, &tag);

  /* Remote identity: a local client's active socket when there is one (the passive side runs after
   * the active side), otherwise the ipcache. */
  rg_endpoint_key_set(&key, tag.remote_addr, tag.remote_port);
  struct rg_endpoint_val *peer = passive ? bpf_map_lookup_elem(&rg_endpoints, &key) : NULL;
  if (peer) {
    tag.dst_identity = peer->identity;
    /* Tell the client's side who it reached. */
    struct rg_sock_tag *client = bpf_map_lookup_elem(&rg_conns, &peer->cookie);
    if (client && client->dst_identity == RG_IDENTITY_WORLD) {
      client->dst_identity = tag.src_identity;
      if (rg_is_trusted(client->src_identity, tag.src_identity) && (client->flags & RG_SOCK_F_GOVERNED))
        client->flags |= RG_SOCK_F_FASTPATH;
    }
  } else {
    tag.dst_identity = rg_ipcache_identity(tag.remote_addr);
  }

  /* The proxy enforces its own connections at L7; its sockets stay out of sk_msg. */
  int governed = !(cg && (cg->flags & RG_CGROUP_F_PROXY));
  if (governed) {
    struct rg_sock_key skey = {};
    __builtin_memcpy(skey.local_addr, tag.local_addr, RG_IPV6_LEN);
    __builtin_memcpy(skey.remote_addr, tag.remote_addr, RG_IPV6_LEN);
    skey.local_port = tag.local_port;
    skey.remote_port = tag.remote_port;
    if (bpf_sock_hash_update(skops, &rg_sockhash, &skey, BPF_ANY) == 0) {
      tag.flags |= RG_SOCK_F_GOVERNED;
      __u32 client = passive ? tag.dst_identity : tag.src_identity;
      __u32 server = passive ? tag.src_identity : tag.dst_identity;
      if (rg_is_trusted(client, server))
        tag.flags |= RG_SOCK_F_FASTPATH;
    } else {
      rg_count(RG_R_SOCKHASH_FULL);
    }
  }

  struct rg_sock_tag *stored = bpf_sk_storage_get(&rg_sock_stg, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (stored)
    *stored = tag;
  if (bpf_map_update_elem(&rg_conns, &tag.cookie, &tag, BPF_ANY) != 0)
    rg_count(RG_R_CONNTAB_FULL);

  if (!passive) {
    rg_endpoint_key_set(&key, tag.local_addr, tag.local_port);
    struct rg_endpoint_val ep = {.cookie = tag.cookie, .identity = tag.src_identity, .flags = tag.flags};
    bpf_map_update_elem(&rg_endpoints, &key, &ep, BPF_ANY);
    struct rg_orig_dst_val *orig = bpf_sk_storage_get(&rg_orig_stg, sk, 0, 0);
    if (orig)
      bpf_map_update_elem(&rg_orig_dst, &key, orig, BPF_ANY);
  }
  bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
  rg_count(RG_R_SOCK_TAGGED);

  struct rg_event *ev = rg_event_reserve(RG_EV_SOCK_TAGGED, RG_R_SOCK_TAGGED);
  if (ev) {
    ev->cookie = tag.cookie;
    ev->src_identity = tag.src_identity;
    ev->dst_identity = tag.dst_identity;
    __builtin_memcpy(ev->saddr, tag.local_addr, RG_IPV6_LEN);
    __builtin_memcpy(ev->daddr, tag.remote_addr, RG_IPV6_LEN);
    ev->sport = tag.local_port;
    ev->dport = tag.remote_port;
    bpf_ringbuf_submit(ev, 0);
  }
}

static __always_inline void rg_closed(struct bpf_sock_ops *skops)
{
  struct bpf_sock *sk = skops->sk;
  if (!sk)
    return;
  struct rg_sock_tag *tag = bpf_sk_storage_get(&rg_sock_stg, sk, 0, 0);
  if (!tag)
    return;
  __u64 cookie = tag->cookie;
  bpf_map_delete_elem(&rg_conns, &cookie);
  if (!(tag->flags & RG_SOCK_F_PASSIVE)) {
    struct rg_endpoint_key key;
    rg_endpoint_key_set(&key, tag->local_addr, tag->local_port);
    /* The endpoint may already belong to a newer socket (port reuse): only remove our own. */
    struct rg_endpoint_val *ep = bpf_map_lookup_elem(&rg_endpoints, &key);
    if (ep && ep->cookie == cookie) {
      bpf_map_delete_elem(&rg_endpoints, &key);
      bpf_map_delete_elem(&rg_orig_dst, &key);
    }
  }
  rg_count(RG_R_SOCK_CLOSED);
}

SEC("sockops")
int rg_sockops(struct bpf_sock_ops *skops)
{
  switch (skops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB: rg_established(skops, 0); break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: rg_established(skops, 1); break;
    case BPF_SOCK_OPS_STATE_CB:
      if (skops->args[1] == TCP_CLOSE)
        rg_closed(skops);
      break;
    default: break;
  }
  return 1;
}
