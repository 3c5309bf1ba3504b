/* Per-CPU counters indexed by enum rg_reason (abi.h); riskgatectl stats sums them over CPUs. */
#ifndef RG_BPF_COUNTERS_H
#define RG_BPF_COUNTERS_H

#include "lib/common.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RG_R_MAX);
  __type(key, __u32);
  __type(value, __u64);
} rg_counters SEC(".maps");

static __always_inline void rg_count(__u32 reason)
{
  __u64 *value = bpf_map_lookup_elem(&rg_counters, &reason);
  if (value)
    *value += 1;
}

#endif
