/* Shared prelude of every riskgate BPF program. */
#ifndef RG_BPF_COMMON_H
#define RG_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <riskgate/abi.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

char LICENSE[] SEC("license") = "GPL";

#endif
