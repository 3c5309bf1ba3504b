// What userspace configures the programs with: trusted pairs (the fast path), manual-unblock
// graces, the L7 redirect and XDP settings; and the counters the programs keep.
#include <riskgate/kernel/pinned_maps.h>

#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <riskgate/common/errors.h>
#include "map_io.h"
#include "map_keys.h"

namespace riskgate::kernel {

namespace {

Result<rg_grace_key> grace_key(std::string_view target)
{
  rg_grace_key key{};
  if (target.empty() || target.size() >= sizeof key.target)
    return make_error(fmt::format("grace target \"{}\": 1 to {} characters", target, sizeof key.target - 1));
  std::memcpy(key.target, target.data(), target.size());
  return key;
}

}  // namespace

Result<void> PinnedMaps::put_trusted(IdentityId client, IdentityId server, std::uint32_t origin)
{
  return put(*this, MapId::trusted, rg_pair_key{client, server}, origin);
}

Result<bool> PinnedMaps::remove_trusted(IdentityId client, IdentityId server)
{
  return remove(*this, MapId::trusted, rg_pair_key{client, server});
}

Result<std::vector<TrustedPair>> PinnedMaps::trusted() const
{
  auto all = entries<rg_pair_key, std::uint32_t>(*this, MapId::trusted);
  if (!all)
    return make_error(all.error());
  std::vector<TrustedPair> out;
  for (const auto &[key, origin] : *all) out.push_back({key.src_identity, key.dst_identity, origin});
  return out;
}

Result<void> PinnedMaps::sync_trusted(const std::set<std::pair<IdentityId, IdentityId>> &pairs)
{
  auto present = trusted();
  if (!present)
    return make_error(present.error());
  std::set<std::pair<IdentityId, IdentityId>> in_map;
  for (const auto &pair : *present) {
    const std::pair key{pair.client, pair.server};
    in_map.insert(key);
    if (pair.origin == RG_TRUSTED_F_POLICY && !pairs.count(key))
      if (auto gone = remove_trusted(pair.client, pair.server); !gone)
        return make_error(fmt::format("trusted pair {} -> {}: {}", pair.client, pair.server, gone.error()));
  }
  for (const auto &[client, server] : pairs)
    if (!in_map.count({client, server}))
      if (auto added = put_trusted(client, server, RG_TRUSTED_F_POLICY); !added)
        return make_error(fmt::format("trusted pair {} -> {}: {}", client, server, added.error()));
  return {};
}

Result<void> PinnedMaps::put_grace(std::string_view target, std::uint64_t until_ns)
{
  auto key = grace_key(target);
  if (!key)
    return make_error(key.error());
  return put(*this, MapId::grace, *key, until_ns);
}

Result<std::optional<std::uint64_t>> PinnedMaps::grace(std::string_view target) const
{
  auto key = grace_key(target);
  if (!key)
    return make_error(key.error());
  return lookup<std::uint64_t>(*this, MapId::grace, *key);
}

Result<std::size_t> PinnedMaps::remove_ended_graces(std::uint64_t now_ns)
{
  auto all = entries<rg_grace_key, std::uint64_t>(*this, MapId::grace);
  if (!all)
    return make_error(all.error());
  std::size_t removed = 0;
  for (const auto &[key, until] : *all) {
    if (until > now_ns)
      continue;
    auto gone = remove(*this, MapId::grace, key);
    if (!gone)
      return make_error(gone.error());
    removed += *gone ? 1 : 0;
  }
  return removed;
}

Result<void> PinnedMaps::set_l7_config(const rg_l7_config &config)
{
  return put(*this, MapId::l7_cfg, std::uint32_t{0}, config);
}

Result<rg_l7_config> PinnedMaps::l7_config() const
{
  auto value = lookup<rg_l7_config>(*this, MapId::l7_cfg, std::uint32_t{0});
  if (!value)
    return make_error(value.error());
  return value->value_or(rg_l7_config{});
}

Result<void> PinnedMaps::put_l7_destination(const PortKey &destination)
{
  return put(*this, MapId::l7_dst, port_key(destination), std::uint32_t{1});
}

Result<void> PinnedMaps::set_xdp_config(const rg_xdp_config &config)
{
  return put(*this, MapId::xdp_cfg, std::uint32_t{0}, config);
}

Result<Counters> PinnedMaps::counters() const
{
  const int ncpu = ::libbpf_num_possible_cpus();
  if (ncpu <= 0)
    return make_error(fmt::format("count possible CPUs: {}", errno_text(ncpu)));
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpu));
  Counters out{};
  for (std::uint32_t reason = 0; reason < RG_R_MAX; ++reason) {
    if (::bpf_map_lookup_elem(fd(MapId::counters), &reason, per_cpu.data()) != 0)
      return make_error(fmt::format("read {}[{}]: {}", map_name(MapId::counters), reason, errno_text(errno)));
    for (std::uint64_t v : per_cpu) out[reason] += v;
  }
  return out;
}

}  // namespace riskgate::kernel
