/* sk_msg on the sockhash: every sendmsg of a governed socket re-checks the blocks of its
 * connection (cookie), both identities and the pair (in connect direction). A block drops the
 * message (the sender gets EACCES); the kernel then keeps that socket's verdict at drop until the
 * socket leaves the sockhash, which is what unblock does (kernel::PinnedMaps::release_socket).
 * Trusted local pairs are redirected socket-to-socket, falling back to plain TCP when the peer is
 * not in the sockhash; a pair no longer in rg_trusted stops being redirected at its next message. */
#include "lib/common.h"
#include "lib/blocks.h"
#include "lib/counters.h"
#include "lib/socks.h"
#include "lib/workloads.h"

static __always_inline int rg_msg_drop(struct rg_sock_tag *tag, __u32 reason,
                                       const struct rg_block_val *block)
{
  rg_count(reason);
  tag->verdict = reason;
  tag->flags |= RG_SOCK_F_DROPPED;
  struct rg_event *ev = rg_event_reserve(RG_EV_MSG_DROP, reason);
  if (ev) {
    ev->decision_id = block ? block->decision_id : 0;
    ev->cookie = tag->cookie;
    ev->src_identity = tag->src_identity;
    ev->dst_identity = tag->dst_identity;
    __builtin_memcpy(ev->saddr, tag->local_addr, RG_IPV6_LEN);
    __builtin_memcpy(ev->daddr, tag->remote_addr, RG_IPV6_LEN);
    ev->sport = tag->local_port;
    ev->dport = tag->remote_port;
    bpf_ringbuf_submit(ev, 0);
  }
  return SK_DROP;
}

SEC("sk_msg")
int rg_msg_gate(struct sk_msg_md *msg)
{
  struct bpf_sock *sk = msg->sk;
  if (!sk)
    return SK_PASS;
  struct rg_sock_tag *own = bpf_sk_storage_get(&rg_sock_stg, sk, 0, 0);
  if (!own)
    return SK_PASS;
  /* The connection table has the peer identity the passive side filled in after establishment. */
  __u64 cookie = own->cookie;
  struct rg_sock_tag *tag = bpf_map_lookup_elem(&rg_conns, &cookie);
  if (!tag)
    tag = own;

  struct rg_block_val *block;
  if ((block = rg_blocked_conn(cookie)))
    return rg_msg_drop(tag, RG_R_MSG_DROP_CONN, block);
  if ((block = rg_blocked_identity(tag->src_identity)) || (block = rg_blocked_identity(tag->dst_identity)))
    return rg_msg_drop(tag, RG_R_MSG_DROP_IDENTITY, block);
  __u32 client = tag->src_identity, server = tag->dst_identity;
  if (tag->flags & RG_SOCK_F_PASSIVE) {
    client = tag->dst_identity;
    server = tag->src_identity;
  }
  if ((block = rg_blocked_pair(client, server)))
    return rg_msg_drop(tag, RG_R_MSG_DROP_PAIR, block);

  /* Trust withdrawn since establishment: the connection leaves the fast path for good. Bytes already
   * redirected are read before what comes through the stack; going back could overtake queued ones. */
  if ((tag->flags & RG_SOCK_F_FASTPATH) && !rg_is_trusted(client, server))
    tag->flags &= ~RG_SOCK_F_FASTPATH;
  if (tag->flags & RG_SOCK_F_FASTPATH) {
    struct rg_sock_key peer = {};
    __builtin_memcpy(peer.local_addr, tag->remote_addr, RG_IPV6_LEN);
    __builtin_memcpy(peer.remote_addr, tag->local_addr, RG_IPV6_LEN);
    peer.local_port = tag->remote_port;
    peer.remote_port = tag->local_port;
    if (bpf_msg_redirect_hash(msg, &rg_sockhash, &peer, BPF_F_INGRESS) == SK_PASS) {
      rg_count(RG_R_MSG_REDIRECT);
      return SK_PASS;
    }
  }
  rg_count(RG_R_MSG_PASS);
  return SK_PASS;
}
