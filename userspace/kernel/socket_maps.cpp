// The socket side: the connection table sockops fills, the sockhash sk_msg governs, and the
// original destinations of redirected connects.
#include <riskgate/kernel/pinned_maps.h>

#include <cstring>

#include <bpf/bpf.h>

#include "map_io.h"
#include "map_keys.h"

namespace riskgate::kernel {

namespace {

// Takes a socket out of the sockhash (undoing sk_msg's sticky drop; the socket then carries on
// ungoverned) and marks it so in the connection table. Returns whether it was there.
Result<bool> release_socket(const PinnedMaps &maps, std::uint64_t cookie)
{
  auto tag = lookup<rg_sock_tag>(maps, MapId::conns, cookie);
  if (!tag)
    return make_error(tag.error());
  if (!*tag)
    return false;
  rg_sock_key key{};
  std::memcpy(key.local_addr, (*tag)->local_addr, sizeof(key.local_addr));
  std::memcpy(key.remote_addr, (*tag)->remote_addr, sizeof(key.remote_addr));
  key.local_port = (*tag)->local_port;
  key.remote_port = (*tag)->remote_port;
  auto removed = remove(maps, MapId::sockhash, key);
  if (!removed)
    return removed;
  rg_sock_tag updated = **tag;
  updated.flags &= ~(RG_SOCK_F_GOVERNED | RG_SOCK_F_DROPPED | RG_SOCK_F_FASTPATH);
  updated.verdict = RG_R_NONE;
  // BPF_EXIST: the socket may have closed meanwhile; then there is nothing to update.
  ::bpf_map_update_elem(maps.fd(MapId::conns), &cookie, &updated, BPF_EXIST);
  return removed;
}

}  // namespace

Result<std::vector<rg_sock_tag>> PinnedMaps::connections() const
{
  auto all = entries<std::uint64_t, rg_sock_tag>(*this, MapId::conns);
  if (!all)
    return make_error(all.error());
  std::vector<rg_sock_tag> out;
  out.reserve(all->size());
  for (const auto &entry : *all) out.push_back(entry.second);
  return out;
}

Result<std::size_t> PinnedMaps::release_unblocked_sockets()
{
  auto conns = connections();
  if (!conns)
    return make_error(conns.error());
  const std::uint64_t now = monotonic_now_ns();
  auto live = [&](auto result) { return result.ok() && result->has_value() && block_live(**result, now); };
  std::size_t released = 0;
  for (const rg_sock_tag &tag : *conns) {
    if (!(tag.flags & RG_SOCK_F_DROPPED))
      continue;
    const bool passive = tag.flags & RG_SOCK_F_PASSIVE;
    const IdentityId client = passive ? tag.dst_identity : tag.src_identity;
    const IdentityId server = passive ? tag.src_identity : tag.dst_identity;
    const bool still_blocked = live(connection_blocks().get(tag.cookie)) ||
                               (tag.src_identity && live(identity_blocks().get(tag.src_identity))) ||
                               (tag.dst_identity && live(identity_blocks().get(tag.dst_identity))) ||
                               live(pair_blocks().get({client, server}));
    if (still_blocked)
      continue;
    auto gone = release_socket(*this, tag.cookie);
    if (!gone)
      return make_error(gone.error());
    released += *gone ? 1 : 0;
  }
  return released;
}

Result<std::optional<sockaddr_storage>> PinnedMaps::original_destination(const sockaddr_storage &client) const
{
  auto key = endpoint_key(client);
  if (!key)
    return make_error(key.error());
  auto value = lookup<rg_orig_dst_val>(*this, MapId::orig_dst, *key);
  if (!value)
    return make_error(value.error());
  if (!*value)
    return std::optional<sockaddr_storage>();
  net::MappedAddr addr;
  std::memcpy(addr.data(), (*value)->addr, addr.size());
  return std::optional<sockaddr_storage>(net::from_mapped(addr, (*value)->port));
}

}  // namespace riskgate::kernel
