// What differs between the five block maps, for BlockTable and the hint rebuild: the map, the
// kernel's key for the caller's, whether blocks need hint slots (ip, identity, port: XDP and
// connect look those up) and whether a removed block may leave sticky sk_msg drops behind
// (identity, pair, connection: what sk_msg enforces).
#pragma once

#include <cstdint>

#include <riskgate/abi.h>
#include <riskgate/common/identity.h>
#include <riskgate/common/net.h>
#include <riskgate/common/result.h>
#include <riskgate/kernel/block_table.h>
#include <riskgate/kernel/pinned_maps.h>
#include "block_hints.h"
#include "map_keys.h"

namespace riskgate::kernel {

template <class Key>
struct BlockScope;

struct BlockScopeDefaults {
  static constexpr bool kHinted = false;
  static constexpr bool kReleasesSockets = false;
  template <class Key>
  static Result<void> check_writable(const Key &)
  {
    return {};
  }
};

template <>
struct BlockScope<net::IpPrefix> : BlockScopeDefaults {
  using KernelKey = rg_lpm_key;
  static constexpr MapId kMap = MapId::blk_ip;
  static constexpr bool kHinted = true;
  static Result<KernelKey> kernel_key(const net::IpPrefix &prefix) { return lpm_key(prefix); }
  static net::IpPrefix key_of(const KernelKey &key) { return prefix_of(key); }
  static HintSlots hint_slots(const KernelKey &key) { return ip_hint_slots(key); }
};

template <>
struct BlockScope<IdentityId> : BlockScopeDefaults {
  using KernelKey = IdentityId;
  static constexpr MapId kMap = MapId::blk_id;
  static constexpr bool kHinted = true;
  static constexpr bool kReleasesSockets = true;
  static Result<void> check_writable(IdentityId identity) { return check_identity(identity); }
  static Result<KernelKey> kernel_key(IdentityId identity) { return identity; }
  static IdentityId key_of(KernelKey identity) { return identity; }
  static HintSlots hint_slots(KernelKey identity) { return identity_hint_slots(identity); }
};

template <>
struct BlockScope<PairKey> : BlockScopeDefaults {
  using KernelKey = rg_pair_key;
  static constexpr MapId kMap = MapId::blk_pair;
  static constexpr bool kReleasesSockets = true;
  static Result<KernelKey> kernel_key(const PairKey &pair) { return rg_pair_key{pair.src, pair.dst}; }
  static PairKey key_of(const KernelKey &key) { return {key.src_identity, key.dst_identity}; }
};

template <>
struct BlockScope<PortKey> : BlockScopeDefaults {
  using KernelKey = rg_port_key;
  static constexpr MapId kMap = MapId::blk_port;
  static constexpr bool kHinted = true;
  static Result<KernelKey> kernel_key(const PortKey &key) { return port_key(key); }
  static PortKey key_of(const KernelKey &key) { return port_key_of(key); }
  static HintSlots hint_slots(const KernelKey &key) { return identity_hint_slots(key.identity); }
};

template <>
struct BlockScope<std::uint64_t> : BlockScopeDefaults {
  using KernelKey = std::uint64_t;  // socket cookie
  static constexpr MapId kMap = MapId::blk_conn;
  static constexpr bool kReleasesSockets = true;
  static Result<KernelKey> kernel_key(std::uint64_t cookie) { return cookie; }
  static std::uint64_t key_of(KernelKey cookie) { return cookie; }
};

}  // namespace riskgate::kernel
