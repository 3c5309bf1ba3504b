// Who is who: the ipcache (address -> identity), the cgroup table, identity names, and the
// endpoints sockops records for local clients.
#include <riskgate/kernel/pinned_maps.h>

#include <cstring>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "map_io.h"
#include "map_keys.h"

namespace riskgate::kernel {

using namespace net;

namespace {

// What a set of identity records puts in the kernel, to find the entries no record names.
struct RecordKeys {
  std::set<std::uint64_t> cgroup_ids;
  std::set<std::pair<std::uint32_t, MappedAddr>> prefixes;  // (lpm prefixlen, address)
  std::set<IdentityId> ids;
};

std::pair<std::uint32_t, MappedAddr> prefix_entry(const rg_lpm_key &key)
{
  MappedAddr addr;
  std::memcpy(addr.data(), key.addr, addr.size());
  return {key.prefixlen, addr};
}

Result<void> remove_stale(const PinnedMaps &maps, const RecordKeys &keep)
{
  auto cgroups = entries<std::uint64_t, rg_cgroup_val>(maps, MapId::cgroups);
  auto cache = entries<rg_lpm_key, rg_ipcache_val>(maps, MapId::ipcache);
  auto names = entries<IdentityId, rg_identity_name>(maps, MapId::id_names);
  if (!cgroups || !cache || !names)
    return make_error(!cgroups ? cgroups.error() : !cache ? cache.error() : names.error());
  for (const auto &[cgroup_id, value] : *cgroups)
    if (!keep.cgroup_ids.count(cgroup_id) && !(value.flags & RG_CGROUP_F_PROXY))
      if (auto gone = remove(maps, MapId::cgroups, cgroup_id); !gone)
        return make_error(gone.error());
  for (const auto &[key, value] : *cache)
    if (!keep.prefixes.count(prefix_entry(key)))
      if (auto gone = remove(maps, MapId::ipcache, key); !gone)
        return make_error(gone.error());
  for (const auto &[id, name] : *names)
    if (!keep.ids.count(id))
      if (auto gone = remove(maps, MapId::id_names, id); !gone)
        return make_error(gone.error());
  return {};
}

}  // namespace

Result<void> PinnedMaps::put_ipcache(const IpPrefix &prefix, IdentityId identity, std::uint32_t flags)
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  return put(*this, MapId::ipcache, *key, rg_ipcache_val{identity, flags});
}

Result<std::vector<IpcacheEntry>> PinnedMaps::ipcache() const
{
  auto all = entries<rg_lpm_key, rg_ipcache_val>(*this, MapId::ipcache);
  if (!all)
    return make_error(all.error());
  std::vector<IpcacheEntry> out;
  for (const auto &[key, value] : *all) out.push_back({prefix_of(key), value.identity, value.flags});
  return out;
}

Result<IdentityId> PinnedMaps::ipcache_identity(const sockaddr_storage &address) const
{
  auto key = lpm_key(IpPrefix{address, 0});
  if (!key)
    return make_error(key.error());
  auto value = lookup<rg_ipcache_val>(*this, MapId::ipcache, *key);
  if (!value)
    return make_error(value.error());
  return *value ? (*value)->identity : RG_IDENTITY_WORLD;
}

Result<void> PinnedMaps::put_cgroup(std::uint64_t cgroup_id, IdentityId identity, std::uint32_t flags)
{
  return put(*this, MapId::cgroups, cgroup_id, rg_cgroup_val{identity, flags});
}

Result<std::vector<CgroupEntry>> PinnedMaps::cgroups() const
{
  auto all = entries<std::uint64_t, rg_cgroup_val>(*this, MapId::cgroups);
  if (!all)
    return make_error(all.error());
  std::vector<CgroupEntry> out;
  for (const auto &[key, value] : *all) out.push_back({key, value.identity, value.flags});
  return out;
}

Result<void> PinnedMaps::put_identity_name(IdentityId identity, const std::string &name)
{
  if (auto ok = check_identity(identity); !ok)
    return ok;
  rg_identity_name value{};
  if (name.empty() || name.size() >= sizeof(value.name))
    return make_error(fmt::format("identity name '{}' must be 1 to {} bytes", name, sizeof(value.name) - 1));
  std::memcpy(value.name, name.data(), name.size());
  return put(*this, MapId::id_names, identity, value);
}

Result<std::map<IdentityId, std::string>> PinnedMaps::identity_names() const
{
  auto all = entries<IdentityId, rg_identity_name>(*this, MapId::id_names);
  if (!all)
    return make_error(all.error());
  std::map<IdentityId, std::string> out;
  for (const auto &[key, value] : *all)
    out[key] = std::string(value.name, ::strnlen(value.name, sizeof(value.name)));
  return out;
}

Result<void> PinnedMaps::sync_identities(const std::vector<IdentityRecord> &records)
{
  RecordKeys written;
  for (const auto &record : records) {
    if (auto ok = check_identity(record.id); !ok)
      return make_error(fmt::format("identity '{}': {}", record.name, ok.error()));
    if (auto ok = put_identity_name(record.id, record.name); !ok)
      return ok;
    written.ids.insert(record.id);
    for (std::uint64_t cgroup_id : record.cgroup_ids) {
      if (auto ok = put_cgroup(cgroup_id, record.id); !ok)
        return ok;
      written.cgroup_ids.insert(cgroup_id);
    }
    for (const auto &prefix : record.cidrs) {
      if (auto ok = put_ipcache(prefix, record.id); !ok)
        return make_error(
            fmt::format("identity '{}' cidr {}: {}", record.name, to_string(prefix), ok.error()));
      written.prefixes.insert(prefix_entry(*lpm_key(prefix)));  // put_ipcache made this key
    }
  }
  // Stale entries go after the new ones are in, so a renamed identity never passes through "unknown".
  return remove_stale(*this, written);
}

Result<std::optional<rg_endpoint_val>> PinnedMaps::endpoint(const sockaddr_storage &client) const
{
  auto key = endpoint_key(client);
  if (!key)
    return make_error(key.error());
  return lookup<rg_endpoint_val>(*this, MapId::endpoints, *key);
}

IdentityId MapPeerIdentity::peer_identity(const sockaddr_storage &peer, const sockaddr_storage &,
                                          std::uint64_t) const
{
  if (auto local = maps_.endpoint(peer); local && *local)
    return (*local)->identity;
  auto remote = maps_.ipcache_identity(peer);
  return remote ? *remote : RG_IDENTITY_WORLD;
}

}  // namespace riskgate::kernel
