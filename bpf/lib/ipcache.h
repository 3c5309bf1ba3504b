/* ipcache: address/CIDR -> identity of remote peers (LPM, one trie for both families). */
#ifndef RG_BPF_IPCACHE_H
#define RG_BPF_IPCACHE_H

#include "lib/common.h"

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct rg_lpm_key);
  __type(value, struct rg_ipcache_val);
} rg_ipcache SEC(".maps");

static __always_inline struct rg_ipcache_val *rg_ipcache_lookup(const __u8 *addr)
{
  struct rg_lpm_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, addr, RG_IPV6_LEN);
  return bpf_map_lookup_elem(&rg_ipcache, &key);
}

static __always_inline __u32 rg_ipcache_identity(const __u8 *addr)
{
  struct rg_ipcache_val *val = rg_ipcache_lookup(addr);
  return val ? val->identity : RG_IDENTITY_WORLD;
}

#endif
