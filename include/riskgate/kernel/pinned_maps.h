// Typed access to riskgate's pinned BPF maps (docs/architecture.md, "Datapath"), without loading
// any program: riskgatectl, the enforcer and the identity feed use it while riskgated may be down.
// Every byte layout stays inside this module; callers see addresses, identities and rg_block_val.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/abi.h>
#include <riskgate/common/identity.h>
#include <riskgate/common/net.h>
#include <riskgate/common/result.h>
#include <riskgate/kernel/block_table.h>

namespace riskgate::kernel {

using net::IpPrefix;  // the maps speak in the common address vocabulary

// Every pinned map, by its kernel name (also its file name under the pin root).
enum class MapId {
  counters,
  events,
  ipcache,
  blk_ip,
  blk_id,
  blk_pair,
  blk_port,
  blk_conn,
  grace,
  blk_hint,
  blk_iphint,
  cgroups,
  id_names,
  trusted,
  l7_cfg,
  l7_dst,
  xdp_cfg,
  syn,
  sock_stg,
  orig_stg,
  conns,
  endpoints,
  orig_dst,
  sockhash,
};
inline constexpr std::size_t kMapCount = static_cast<std::size_t>(MapId::sockhash) + 1;
const char *map_name(MapId id);

struct IpcacheEntry {
  IpPrefix prefix;
  IdentityId identity;
  std::uint32_t flags;
};
struct CgroupEntry {
  std::uint64_t cgroup_id;
  IdentityId identity;
  std::uint32_t flags;
};
// (client, server): connections from client to server go socket to socket. origin: RG_TRUSTED_F_*.
struct TrustedPair {
  IdentityId client;
  IdentityId server;
  std::uint32_t origin;
};

using Counters = std::array<std::uint64_t, RG_R_MAX>;  // indexed by enum rg_reason, summed over CPUs

class PinnedMaps {
 public:
  // Opens every map pinned under `pin_root`; fails naming the first one missing.
  static Result<PinnedMaps> open(const std::string &pin_root);
  PinnedMaps(PinnedMaps &&other) noexcept;
  PinnedMaps &operator=(PinnedMaps &&other) noexcept;
  PinnedMaps(const PinnedMaps &) = delete;
  PinnedMaps &operator=(const PinnedMaps &) = delete;
  ~PinnedMaps();

  int fd(MapId id) const { return fds_[static_cast<std::size_t>(id)]; }

  // ---- blocks (block_table.h) ----
  BlockTable<IpPrefix> ip_blocks() { return BlockTable<IpPrefix>(*this); }
  BlockTable<IdentityId> identity_blocks() { return BlockTable<IdentityId>(*this); }
  BlockTable<PairKey> pair_blocks() { return BlockTable<PairKey>(*this); }
  BlockTable<PortKey> port_blocks() { return BlockTable<PortKey>(*this); }
  BlockTable<std::uint64_t> connection_blocks() { return BlockTable<std::uint64_t>(*this); }  // by cookie
  // Removes expired entries from every block map (the kernel already ignores them); returns count.
  Result<std::size_t> remove_expired_blocks();

  // ---- sockets ----
  Result<std::vector<rg_sock_tag>> connections() const;
  // Releases every socket sk_msg dropped on whose blocks are no longer in force (removed or
  // expired): taking it out of the sockhash is the only way to undo sk_msg's sticky drop (the socket
  // then carries on ungoverned). Removing a block does this; call it periodically to end TTL'd drops.
  // Returns count.
  Result<std::size_t> release_unblocked_sockets();
  // Original destination of a connect() redirected to the proxy, by the client's source endpoint
  // (the proxy's accepted socket's peer address).
  Result<std::optional<sockaddr_storage>> original_destination(const sockaddr_storage &client) const;

  // ---- identities ----
  Result<void> put_ipcache(const IpPrefix &prefix, IdentityId identity, std::uint32_t flags = 0);
  Result<std::vector<IpcacheEntry>> ipcache() const;
  Result<IdentityId> ipcache_identity(const sockaddr_storage &address) const;  // longest match
  Result<void> put_cgroup(std::uint64_t cgroup_id, IdentityId identity, std::uint32_t flags = 0);
  Result<std::vector<CgroupEntry>> cgroups() const;
  Result<void> put_identity_name(IdentityId identity, const std::string &name);
  Result<std::map<IdentityId, std::string>> identity_names() const;
  // Makes the kernel's identity tables equal to `records`: writes every cgroup, CIDR and name, and
  // removes entries no record names (cgroup entries flagged RG_CGROUP_F_PROXY are kept).
  Result<void> sync_identities(const std::vector<IdentityRecord> &records);
  // The active socket bound to `client` (its source ip:port), as sockops recorded it.
  Result<std::optional<rg_endpoint_val>> endpoint(const sockaddr_storage &client) const;

  // ---- configuration: fast path, grace, transparent redirect, XDP; counters ----
  Result<void> put_trusted(IdentityId client, IdentityId server, std::uint32_t origin = RG_TRUSTED_F_MANUAL);
  Result<bool> remove_trusted(IdentityId client, IdentityId server);
  Result<std::vector<TrustedPair>> trusted() const;
  // Makes the policy's pairs in rg_trusted (RG_TRUSTED_F_POLICY) equal to `pairs` (client, server):
  // adds the new, removes the stale; pairs written by hand stay as they are.
  Result<void> sync_trusted(const std::set<std::pair<IdentityId, IdentityId>> &pairs);

  // Manual-unblock grace (rg_grace): until when (CLOCK_MONOTONIC) automatic blocks of a target, named
  // as enforce::describe() names it, are ignored. Pinned, so it outlives the agent that set it.
  Result<void> put_grace(std::string_view target, std::uint64_t until_ns);
  Result<std::optional<std::uint64_t>> grace(std::string_view target) const;
  // Removes the graces that ended by `now_ns`; returns how many.
  Result<std::size_t> remove_ended_graces(std::uint64_t now_ns);

  Result<void> set_l7_config(const rg_l7_config &config);
  Result<rg_l7_config> l7_config() const;
  Result<void> put_l7_destination(const PortKey &destination);
  Result<void> set_xdp_config(const rg_xdp_config &config);

  Result<Counters> counters() const;

 private:
  PinnedMaps() { fds_.fill(-1); }
  void close_all();
  std::array<int, kMapCount> fds_{};
};

// PeerIdentitySource over the maps: a local client is found by its source endpoint (one lookup in
// the endpoint table sockops fills), anything else by the ipcache (a second lookup, remote peers).
class MapPeerIdentity final : public PeerIdentitySource {
 public:
  explicit MapPeerIdentity(const PinnedMaps &maps) : maps_(maps) {}
  IdentityId peer_identity(const sockaddr_storage &peer, const sockaddr_storage &local,
                           std::uint64_t socket_cookie) const override;

 private:
  const PinnedMaps &maps_;
};

}  // namespace riskgate::kernel
