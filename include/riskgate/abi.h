/* riskgate kernel ABI: every struct and constant shared by the BPF programs (bpf/) and userspace.
 *
 * Rules (docs/architecture.md, "Datapath"):
 *  - fixed-width types only, explicit padding, no bitfields: the layout is the same in BPF C and C++;
 *    C++ checks sizes and offsets with static_asserts at the end of this file;
 *  - identities are u32, 0 = unknown/world;
 *  - IP addresses are 16 bytes, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d), so one LPM rule serves
 *    both families (an IPv4 /24 is prefix 96 + 24);
 *  - block values carry a CLOCK_MONOTONIC expiry (bpf_ktime_get_ns); an expired entry is absent.
 */
#ifndef RISKGATE_ABI_H
#define RISKGATE_ABI_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
typedef std::uint8_t rg_u8;
typedef std::uint16_t rg_u16;
typedef std::uint32_t rg_u32;
typedef std::uint64_t rg_u64;
#else
typedef __u8 rg_u8;
typedef __u16 rg_u16;
typedef __u32 rg_u32;
typedef __u64 rg_u64;
#endif

#define RG_IDENTITY_WORLD 0u
#define RG_IPV6_LEN 16
#define RG_V4_MAPPED_PREFIX 96 /* prefix length of ::ffff:0:0/96 */
#define RG_EXPIRES_NEVER 0ull  /* expires_ns == 0: no expiry */

/* Block hints: a u32 array indexed by identity & RG_HINT_MASK, nonzero when an identity or port
 * block for an identity in that slot may exist. The per-packet path looks the hint up (an inlined
 * array access) and only then the block hashes, so identities without blocks pay no hash lookups.
 * Writers set the hint before and after writing a block; a rebuild clears stale slots. */
#define RG_HINT_SLOTS 65536u
#define RG_HINT_MASK (RG_HINT_SLOTS - 1)
/* The same for IP/CIDR blocks, indexed by the address's top 16 bits (IPv4: of the v4 address;
 * IPv6: of the address): a prefix shorter than 16 bits sets every slot it covers. */
#define RG_IP_HINT_BITS 16

/* Why something was counted or dropped: index into the per-CPU counter array rg_counters and the
 * `reason` of block values and events. Append only: pinned maps outlive a binary upgrade.
 * One row per reason, X(NAME, value, wire name): the enum below and the names the CLI, the metrics
 * and the decision log print (userspace: riskgate/common/reasons.h) come from this one table. */
#define RG_REASONS(X)                                                                                       \
  X(NONE, 0, none)                                                                                          \
  X(XDP_PASS, 1, xdp_pass)                                                                                  \
  X(XDP_MALFORMED, 2, xdp_malformed)         /* truncated/unparsable packet: passed, counted */             \
  X(XDP_DROP_IP, 3, xdp_drop_ip)             /* source IP/CIDR blocked */                                   \
  X(XDP_DROP_IDENTITY, 4, xdp_drop_identity) /* source identity blocked */                                  \
  X(XDP_DROP_PORT, 5, xdp_drop_port)         /* (source identity, destination port) blocked */              \
  X(XDP_DROP_SYN_RATE, 6, xdp_drop_syn_rate) /* per-source SYN budget exhausted */                          \
  X(CONNECT_ALLOW, 7, connect_allow)                                                                        \
  X(CONNECT_DENY_IDENTITY, 8, connect_deny_identity)                                                        \
  X(CONNECT_DENY_PAIR, 9, connect_deny_pair)                                                                \
  X(CONNECT_DENY_IP, 10, connect_deny_ip)                                                                   \
  X(CONNECT_REDIRECT, 11, connect_redirect) /* rewritten to the local proxy for L7 inspection */            \
  X(SOCK_TAGGED, 12, sock_tagged)                                                                           \
  X(SOCK_CLOSED, 13, sock_closed)                                                                           \
  X(MSG_PASS, 14, msg_pass)                                                                                 \
  X(MSG_DROP_IDENTITY, 15, msg_drop_identity)                                                               \
  X(MSG_DROP_PAIR, 16, msg_drop_pair)                                                                       \
  X(MSG_DROP_CONN, 17, msg_drop_conn)                                                                       \
  X(MSG_REDIRECT, 18, msg_redirect)           /* trusted local pair: socket-to-socket fast path */          \
  X(RINGBUF_FULL, 19, ringbuf_full)           /* an event was lost because the ring buffer was full */      \
  X(USER_BLOCK, 20, user_block)               /* block written by userspace (decision or CLI) */            \
  X(SOCKHASH_FULL, 21, sockhash_full)         /* a governed socket could not be inserted in the sockhash */ \
  X(CONNECT_DENY_PORT, 22, connect_deny_port) /* (caller identity, destination port) blocked */             \
  X(CONNTAB_FULL, 23, conntab_full)           /* connection table full: socket governed but not listed */   \
  X(SENDMSG_ALLOW, 24, sendmsg_allow)         /* unconnected UDP datagram (sendto) passed */                \
  X(SENDMSG_DENY_IDENTITY, 25, sendmsg_deny_identity)                                                       \
  X(SENDMSG_DENY_PAIR, 26, sendmsg_deny_pair)                                                               \
  X(SENDMSG_DENY_IP, 27, sendmsg_deny_ip)                                                                   \
  X(SENDMSG_DENY_PORT, 28, sendmsg_deny_port)

enum rg_reason {
#define RG_REASON_ENUM(name, value, text) RG_R_##name = value,
  RG_REASONS(RG_REASON_ENUM)
#undef RG_REASON_ENUM
      RG_R_MAX = 32
};

/* Value of every block map (ip LPM, identity, pair, port, connection). */
struct rg_block_val {
  rg_u64 expires_ns;  /* bpf_ktime_get_ns() deadline; RG_EXPIRES_NEVER = until removed */
  rg_u64 decision_id; /* the decision (or CLI action) that wrote it, for explain */
  rg_u32 reason;      /* enum rg_reason the kernel reports when it enforces this block */
  rg_u32 flags;       /* RG_BLOCK_F_* */
};
#define RG_BLOCK_F_MANUAL 0x1u /* written by an operator (riskgatectl), not by a decision */

/* LPM trie key for the ipcache and the IP block map. */
struct rg_lpm_key {
  rg_u32 prefixlen; /* bits of addr that count, 0..128 (IPv4: 96 + v4 prefix) */
  rg_u8 addr[RG_IPV6_LEN];
};

/* ipcache value: who owns an address. */
struct rg_ipcache_val {
  rg_u32 identity;
  rg_u32 flags; /* RG_IPCACHE_F_* */
};
#define RG_IPCACHE_F_L7 0x1u    /* connect() to this destination is redirected to the proxy */
#define RG_IPCACHE_F_LOCAL 0x2u /* address of a local workload */

/* Identity pair key (block map, trusted fast-path pairs). */
struct rg_pair_key {
  rg_u32 src_identity;
  rg_u32 dst_identity;
};

/* rg_trusted value: who wrote the pair (any entry makes it trusted). riskgated keeps the policy's
 * pairs equal to its fastPath list and leaves the others alone. */
#define RG_TRUSTED_F_MANUAL 0x1u /* written by hand (bpftool, tests) */
#define RG_TRUSTED_F_POLICY 0x2u /* declared by the policy's fastPath */

/* rg_grace key: the target of a manual unblock as riskgated names it ("identity 7", "ip 10.0.0.0/8",
 * zero-padded). The value (__u64) is the CLOCK_MONOTONIC deadline until which automatic blocks of
 * that target are ignored. No program reads it: it is pinned so that the operator's unblock outlives
 * an agent restart and is written by riskgatectl even while no agent runs. */
#define RG_GRACE_TARGET_LEN 64
#define RG_GRACE_ENTRIES 4096
struct rg_grace_key {
  char target[RG_GRACE_TARGET_LEN];
};

/* (identity, destination port) key for port-scoped blocks. */
struct rg_port_key {
  rg_u32 identity;
  rg_u16 port; /* host byte order */
  rg_u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
  rg_u8 pad;
};

/* cgroup id -> identity of the local workloads (written by userspace from the registry). */
struct rg_cgroup_val {
  rg_u32 identity;
  rg_u32 flags; /* RG_CGROUP_F_* */
};
#define RG_CGROUP_F_PROXY 0x1u /* riskgated's own cgroup: never redirected, never dropped */

/* Per-socket tag written at establishment (sk_storage and the connection table). */
struct rg_sock_tag {
  rg_u64 cookie;         /* bpf_get_socket_cookie of this socket */
  rg_u64 established_ns; /* bpf_ktime_get_ns at establishment */
  rg_u32 src_identity;   /* local end (this socket's owner) */
  rg_u32 dst_identity;   /* remote end */
  rg_u32 verdict;        /* enum rg_reason of the last decision on this socket */
  rg_u32 flags;          /* RG_SOCK_F_* */
  rg_u8 local_addr[RG_IPV6_LEN];
  rg_u8 remote_addr[RG_IPV6_LEN];
  rg_u16 local_port; /* host byte order */
  rg_u16 remote_port;
  rg_u32 pad;
};
#define RG_SOCK_F_PASSIVE 0x1u  /* accepted side */
#define RG_SOCK_F_FASTPATH 0x2u /* trusted local pair, redirected by sk_msg */
#define RG_SOCK_F_GOVERNED 0x4u /* in the sockhash: every message is checked */
#define RG_SOCK_F_DROPPED 0x8u  /* sk_msg dropped a message: sticky until released from the sockhash */

/* One end of a TCP connection. Keys the original-destination map and the endpoint map by the
 * client's source ip:port, which is what the proxy sees as its accepted socket's peer address. */
struct rg_endpoint_key {
  rg_u8 addr[RG_IPV6_LEN];
  rg_u16 port; /* host byte order */
  rg_u16 pad;
  rg_u32 pad2;
};

/* Endpoint map value: who owns the active (connecting) socket bound to that endpoint. */
struct rg_endpoint_val {
  rg_u64 cookie;
  rg_u32 identity;
  rg_u32 flags; /* RG_SOCK_F_* */
};

/* Sockhash key: the socket's own 4-tuple, so sk_msg can redirect to the peer by swapping ends. */
struct rg_sock_key {
  rg_u8 local_addr[RG_IPV6_LEN];
  rg_u8 remote_addr[RG_IPV6_LEN];
  rg_u16 local_port; /* host byte order */
  rg_u16 remote_port;
  rg_u32 pad;
};

/* Source address key of the per-source SYN buckets. */
struct rg_addr_key {
  rg_u8 addr[RG_IPV6_LEN];
};

/* Transparent L7 redirect (single-entry array). proxy_port 0 = no redirect. */
struct rg_l7_config {
  rg_u16 proxy_port; /* host byte order; connect() is rewritten to loopback:proxy_port */
  rg_u16 pad;
  rg_u32 flags;
  rg_u64 proxy_cgroup_id; /* the proxy's cgroup: its own connects are never redirected or denied */
};

/* identity id -> name, pinned so riskgatectl and a restarted agent agree on names. */
#define RG_IDENTITY_NAME_LEN 64
struct rg_identity_name {
  char name[RG_IDENTITY_NAME_LEN]; /* NUL-terminated */
};

/* Original destination of a connect() redirected to the proxy (value of the map keyed by
 * rg_endpoint_key; also the socket's own sk_storage between connect and establishment). */
struct rg_orig_dst_val {
  rg_u8 addr[RG_IPV6_LEN];
  rg_u16 port;   /* host byte order */
  rg_u16 family; /* AF_INET / AF_INET6 */
  rg_u32 src_identity;
  rg_u64 cookie;
};

/* XDP gate configuration (single-entry array). */
struct rg_xdp_config {
  rg_u32 syn_rate_per_sec; /* per-source SYN budget refill; 0 = no SYN limit */
  rg_u32 syn_burst;        /* bucket size */
  rg_u32 event_sample;     /* emit one drop event per N drops (0 or 1 = every drop) */
  rg_u32 flags;
};

/* Per-source SYN token bucket state (LRU is fine here: losing state only refills a bucket). */
struct rg_syn_bucket {
  rg_u64 last_ns;
  rg_u64 tokens_milli; /* tokens * 1000 */
};

/* Ring buffer event. */
enum rg_event_type {
  RG_EV_XDP_DROP = 1,
  RG_EV_CONNECT_DENY = 2,
  RG_EV_MSG_DROP = 3,
  RG_EV_SOCK_TAGGED = 4,
  RG_EV_SENDMSG_DENY = 5, /* an unconnected UDP datagram refused (sendto failed with EPERM) */
};
struct rg_event {
  rg_u64 ts_ns;
  rg_u64 decision_id; /* of the block that caused it, 0 if none */
  rg_u64 cookie;
  rg_u32 type;   /* enum rg_event_type */
  rg_u32 reason; /* enum rg_reason */
  rg_u32 src_identity;
  rg_u32 dst_identity;
  rg_u8 saddr[RG_IPV6_LEN];
  rg_u8 daddr[RG_IPV6_LEN];
  rg_u16 sport; /* host byte order */
  rg_u16 dport;
  rg_u32 ifindex;
};

#ifdef __cplusplus
#define RG_ABI_CHECK(type, size, align)                                                        \
  static_assert(sizeof(type) == (size), #type " size changed: update both BPF and userspace"); \
  static_assert(alignof(type) == (align), #type " alignment changed")
RG_ABI_CHECK(rg_block_val, 24, 8);
RG_ABI_CHECK(rg_lpm_key, 20, 4);
RG_ABI_CHECK(rg_ipcache_val, 8, 4);
RG_ABI_CHECK(rg_pair_key, 8, 4);
RG_ABI_CHECK(rg_port_key, 8, 4);
RG_ABI_CHECK(rg_grace_key, 64, 1);
RG_ABI_CHECK(rg_cgroup_val, 8, 4);
RG_ABI_CHECK(rg_sock_tag, 72, 8);
RG_ABI_CHECK(rg_endpoint_key, 24, 4);
RG_ABI_CHECK(rg_endpoint_val, 16, 8);
RG_ABI_CHECK(rg_sock_key, 40, 4);
RG_ABI_CHECK(rg_addr_key, 16, 1);
RG_ABI_CHECK(rg_l7_config, 16, 8);
RG_ABI_CHECK(rg_identity_name, 64, 1);
RG_ABI_CHECK(rg_orig_dst_val, 32, 8);
RG_ABI_CHECK(rg_xdp_config, 16, 4);
RG_ABI_CHECK(rg_syn_bucket, 16, 8);
RG_ABI_CHECK(rg_event, 80, 8);
static_assert(offsetof(rg_block_val, reason) == 16);
static_assert(offsetof(rg_lpm_key, addr) == 4);
static_assert(offsetof(rg_sock_tag, local_addr) == 32);
static_assert(offsetof(rg_event, saddr) == 40);
static_assert(RG_R_SENDMSG_DENY_PORT < RG_R_MAX);
#undef RG_ABI_CHECK
#endif

#endif /* RISKGATE_ABI_H */
