/* Per-CPU counters indexed by enum rg_reason (abi.h), summed over CPUs by userspace, and the one
 * ring buffer of events (a full ring is counted, never waited on). */
#ifndef RG_BPF_COUNTERS_H
#define RG_BPF_COUNTERS_H

#include "lib/common.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RG_R_MAX);
  __type(key, __u32);
  __type(value, __u64);
} rg_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} rg_events SEC(".maps");

/* Counts one `reason` and returns the new per-CPU count (0 if the slot is missing). */
static __always_inline __u64 rg_count(__u32 reason)
{
  __u64 *value = bpf_map_lookup_elem(&rg_counters, &reason);
  if (!value)
    return 0;
  *value += 1;
  return *value;
}

/* Reserves an event, zeroed and stamped; NULL (and counted) when the ring is full. */
static __always_inline struct rg_event *rg_event_reserve(__u32 type, __u32 reason)
{
  struct rg_event *ev = bpf_ringbuf_reserve(&rg_events, sizeof(*ev), 0);
  if (!ev) {
    rg_count(RG_R_RINGBUF_FULL);
    return NULL;
  }
  __builtin_memset(ev, 0, sizeof(*ev));
  ev->ts_ns = bpf_ktime_get_ns();
  ev->type = type;
  ev->reason = reason;
  return ev;
}

#endif
