/* Block maps (plain HASH / LPM, never LRU: an eviction would silently lift a block). A value whose
 * expires_ns has passed is treated as absent, so a TTL ends on time without userspace. */
#ifndef RG_BPF_BLOCKS_H
#define RG_BPF_BLOCKS_H

#include "lib/common.h"

#define RG_BLOCK_ENTRIES 16384 /* default; the loader sizes them from config */

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, RG_BLOCK_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct rg_lpm_key);
  __type(value, struct rg_block_val);
} rg_blk_ip SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_BLOCK_ENTRIES);
  __type(key, __u32);
  __type(value, struct rg_block_val);
} rg_blk_id SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_BLOCK_ENTRIES);
  __type(key, struct rg_pair_key);
  __type(value, struct rg_block_val);
} rg_blk_pair SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_BLOCK_ENTRIES);
  __type(key, struct rg_port_key);
  __type(value, struct rg_block_val);
} rg_blk_port SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_BLOCK_ENTRIES);
  __type(key, __u64);
  __type(value, struct rg_block_val);
} rg_blk_conn SEC(".maps");

/* Manual-unblock grace, for userspace only (see struct rg_grace_key): pinned with the block maps. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RG_GRACE_ENTRIES);
  __type(key, struct rg_grace_key);
  __type(value, __u64);
} rg_grace SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, RG_HINT_SLOTS);
  __type(key, __u32);
  __type(value, __u32);
} rg_hint_id SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, RG_HINT_SLOTS);
  __type(key, __u32);
  __type(value, __u32);
} rg_hint_ip SEC(".maps");

/* Whether an IP/CIDR block may cover `addr` (16-byte key form). */
static __always_inline int rg_ip_may_be_blocked(const __u8 *addr)
{
  const __u32 *words = (const __u32 *)addr;
  int v4 = words[0] == 0 && words[1] == 0 && words[2] == bpf_htonl(0x0000ffff);
  __u32 slot = (__u32)(v4 ? addr[12] : addr[0]) << 8 | (v4 ? addr[13] : addr[1]);
  __u32 *hint = bpf_map_lookup_elem(&rg_hint_ip, &slot);
  return hint && *hint;
}

/* Whether an identity or port block may exist for `identity` (see RG_HINT_SLOTS in abi.h). */
static __always_inline int rg_identity_may_be_blocked(__u32 identity)
{
  __u32 slot = identity & RG_HINT_MASK;
  __u32 *hint = bpf_map_lookup_elem(&rg_hint_id, &slot);
  return hint && *hint;
}

static __always_inline struct rg_block_val *rg_block_live(struct rg_block_val *val)
{
  if (!val)
    return NULL;
  if (val->expires_ns != RG_EXPIRES_NEVER && bpf_ktime_get_ns() >= val->expires_ns)
    return NULL;
  return val;
}

static __always_inline struct rg_block_val *rg_blocked_ip(const __u8 *addr)
{
  if (!rg_ip_may_be_blocked(addr))
    return NULL;
  struct rg_lpm_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, addr, RG_IPV6_LEN);
  return rg_block_live(bpf_map_lookup_elem(&rg_blk_ip, &key));
}

/* Identity 0 (world) is never blockable as a whole: that would cut off every unknown peer. */
static __always_inline struct rg_block_val *rg_blocked_identity(__u32 identity)
{
  if (identity == RG_IDENTITY_WORLD)
    return NULL;
  return rg_block_live(bpf_map_lookup_elem(&rg_blk_id, &identity));
}

static __always_inline struct rg_block_val *rg_blocked_pair(__u32 src, __u32 dst)
{
  struct rg_pair_key key = {.src_identity = src, .dst_identity = dst};
  return rg_block_live(bpf_map_lookup_elem(&rg_blk_pair, &key));
}

static __always_inline struct rg_block_val *rg_blocked_port(__u32 identity, __u16 port, __u8 proto)
{
  struct rg_port_key key = {.identity = identity, .port = port, .proto = proto};
  return rg_block_live(bpf_map_lookup_elem(&rg_blk_port, &key));
}

static __always_inline struct rg_block_val *rg_blocked_conn(__u64 cookie)
{
  return rg_block_live(bpf_map_lookup_elem(&rg_blk_conn, &cookie));
}

#endif
