// The five block maps (ip, identity, pair, port, connection), one typed table each: callers speak in
// prefixes, identities and cookies; the kernel's key layouts stay inside this module.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <riskgate/abi.h>
#include <riskgate/common/identity.h>
#include <riskgate/common/net.h>
#include <riskgate/common/result.h>

namespace riskgate::kernel {

class PinnedMaps;

// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns() and of rg_block_val::expires_ns.
std::uint64_t monotonic_now_ns();
// expires_ns for a block lasting `ttl` from now; a zero ttl is RG_EXPIRES_NEVER.
std::uint64_t expires_after(std::chrono::nanoseconds ttl);
// Convenience: a block value with this TTL (0 = until removed).
rg_block_val block_value(std::chrono::milliseconds ttl, std::uint64_t decision_id,
                         std::uint32_t reason = RG_R_USER_BLOCK, std::uint32_t flags = 0);
// Whether a block value is in force now (what the kernel decides with the same clock).
bool block_live(const rg_block_val &value, std::uint64_t now_ns = monotonic_now_ns());

// Keys of the scopes that need more than one value: an IP block is keyed by a net::IpPrefix, an
// identity block by an IdentityId, a connection block by a socket cookie (std::uint64_t).
struct PairKey {
  IdentityId src;
  IdentityId dst;
};
struct PortKey {  // a destination: (identity, port, IP protocol); also keys rg_l7_dst
  IdentityId identity;
  std::uint16_t port;
  std::uint8_t proto;
};

template <class Key>
struct Block {
  Key key;
  rg_block_val value;
};

// One block map, a cheap handle on PinnedMaps (which must outlive it). put overwrites; remove says
// whether an entry was there, and then ends what the entry had started: it releases the sockets
// sk_msg dropped on that no block holds any more, and clears the block hints no block needs.
template <class Key>
class BlockTable {
 public:
  explicit BlockTable(PinnedMaps &maps) : maps_(maps) {}
  Result<void> put(const Key &key, const rg_block_val &value) const;
  Result<bool> remove(const Key &key) const;
  // One entry, expired or not (nullopt when absent): the enforcer's de-duplication reads these.
  Result<std::optional<rg_block_val>> get(const Key &key) const;
  Result<std::vector<Block<Key>>> list() const;

 private:
  PinnedMaps &maps_;
};

extern template class BlockTable<net::IpPrefix>;
extern template class BlockTable<IdentityId>;
extern template class BlockTable<PairKey>;
extern template class BlockTable<PortKey>;
extern template class BlockTable<std::uint64_t>;

}  // namespace riskgate::kernel
