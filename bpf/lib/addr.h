/* Addresses as 16-byte IPv6, IPv4 v4-mapped (::ffff:a.b.c.d), as in every key of abi.h. */
#ifndef RG_BPF_ADDR_H
#define RG_BPF_ADDR_H

#include "lib/common.h"

static __always_inline void rg_addr_from_v4(__u8 *dst, __be32 v4)
{
  __u32 *words = (__u32 *)dst;
  words[0] = 0;
  words[1] = 0;
  words[2] = bpf_htonl(0x0000ffff);
  words[3] = v4;
}

static __always_inline void rg_addr_from_v6(__u8 *dst, const __u32 *v6)
{
  __u32 *words = (__u32 *)dst;
  words[0] = v6[0];
  words[1] = v6[1];
  words[2] = v6[2];
  words[3] = v6[3];
}

/* Loads a context field right here: without the barrier the compiler may merge loads of different
 * fields into one load through a computed ctx pointer, which the verifier rejects. */
#define rg_ctx_u32(field)         \
  ({                              \
    __u32 __v = (field);          \
    asm volatile("" : "+r"(__v)); \
    __v;                          \
  })

/* Context structs (bpf_sock_ops, sk_msg_md, bpf_sock) only allow 4-byte loads of ip6 fields. */
static __always_inline void rg_addr_from_ctx6(__u8 *dst, __u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
  __u32 *words = (__u32 *)dst;
  words[0] = w0;
  words[1] = w1;
  words[2] = w2;
  words[3] = w3;
}

#endif
