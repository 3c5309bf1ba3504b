/* Socket state shared by connect, sockops, sk_msg and getsockopt: per-socket storage, the connection
 * table (cookie -> tag, what riskgatectl conns lists), the endpoint table (client source ip:port ->
 * identity, what the proxy asks), original destinations of redirected connects, and the sockhash
 * that puts governed sockets under sk_msg. */
#ifndef RG_BPF_SOCKS_H
#define RG_BPF_SOCKS_H

#include "lib/common.h"

#define RG_CONN_ENTRIES 65536 /* default; the loader sizes them from config */

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct rg_sock_tag);
} rg_sock_stg SEC(".maps");

/* Original destination between connect() and establishment (a cookie cannot join the two sides). */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct rg_orig_dst_val);
} rg_orig_stg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_CONN_ENTRIES);
  __type(key, __u64);
  __type(value, struct rg_sock_tag);
} rg_conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_CONN_ENTRIES);
  __type(key, struct rg_endpoint_key);
  __type(value, struct rg_endpoint_val);
} rg_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_CONN_ENTRIES);
  __type(key, struct rg_endpoint_key);
  __type(value, struct rg_orig_dst_val);
} rg_orig_dst SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, RG_CONN_ENTRIES);
  __type(key, struct rg_sock_key);
  __type(value, __u64);
} rg_sockhash SEC(".maps");

static __always_inline void rg_endpoint_key_set(struct rg_endpoint_key *key, const __u8 *addr, __u16 port)
{
  __builtin_memcpy(key->addr, addr, RG_IPV6_LEN);
  key->port = port;
  key->pad = 0;
  key->pad2 = 0;
}

#endif
