/* Local workloads: cgroup id -> identity, the pinned id -> name table (read by userspace only),
 * trusted fast-path pairs and the transparent-redirect configuration. */
#ifndef RG_BPF_WORKLOADS_H
#define RG_BPF_WORKLOADS_H

#include "lib/common.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, struct rg_cgroup_val);
} rg_cgroups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, struct rg_identity_name);
} rg_id_names SEC(".maps");

/* (src, dst) identity pairs whose local connections take the socket-to-socket fast path. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct rg_pair_key);
  __type(value, __u32);
} rg_trusted SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct rg_l7_config);
} rg_l7_cfg SEC(".maps");

/* (destination identity, port, proto) marked for L7 inspection: connect() goes to the proxy. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct rg_port_key);
  __type(value, __u32);
} rg_l7_dst SEC(".maps");

static __always_inline struct rg_cgroup_val *rg_cgroup_lookup(__u64 cgroup_id)
{
  return bpf_map_lookup_elem(&rg_cgroups, &cgroup_id);
}

static __always_inline struct rg_l7_config *rg_l7_config_get(void)
{
  __u32 zero = 0;
  return bpf_map_lookup_elem(&rg_l7_cfg, &zero);
}

static __always_inline int rg_is_trusted(__u32 src, __u32 dst)
{
  struct rg_pair_key key = {.src_identity = src, .dst_identity = dst};
  return bpf_map_lookup_elem(&rg_trusted, &key) != NULL;
}

#endif
