#include "agent/identity_feed.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "kernel/addr.h"

namespace riskgate::agent {

namespace {

// The registry keeps prefixes in the kernel's key form (IPv4 v4-mapped, prefix 96 + n); IpPrefix
// wants them in the family's own terms.
kernel::IpPrefix to_prefix(const identity::Cidr &cidr)
{
  static constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  kernel::MappedAddr addr{};
  std::copy(cidr.addr.begin(), cidr.addr.end(), addr.begin());
  kernel::IpPrefix out;
  out.address = kernel::from_mapped(addr);
  const bool v4 = std::memcmp(addr.data(), kV4Mapped, sizeof kV4Mapped) == 0 && cidr.prefixlen >= 96;
  out.prefix_len = static_cast<std::uint8_t>(v4 ? cidr.prefixlen - 96 : cidr.prefixlen);
  return out;
}

}  // namespace

std::vector<kernel::IdentityRecord> kernel_records(const identity::RegistrySnapshot &snapshot)
{
  std::vector<kernel::IdentityRecord> records;
  records.reserve(snapshot.identities.size());
  for (const auto &identity : snapshot.identities) {
    kernel::IdentityRecord record;
    record.id = identity.id;
    record.name = identity.name;
    record.cgroup_ids = identity.cgroup_ids;
    for (const auto &cidr : identity.cidrs)
      record.cidrs.push_back(to_prefix(cidr));
    records.push_back(std::move(record));
  }
  return records;
}

Result<void> feed_identities(identity::WorkloadRegistry &registry, kernel::PinnedMaps *maps)
{
  auto snapshot = registry.rescan();
  if (!snapshot)
    return make_error(fmt::format("identity registry: {}", snapshot.error()));
  for (const auto &warning : (*snapshot)->warnings)
    fmt::print(stderr, "riskgated: identity registry: {}\n", warning);
  if (!maps)
    return {};
  if (auto synced = maps->sync_identities(kernel_records(**snapshot)); !synced)
    return make_error(fmt::format("identity feed to the kernel: {}", synced.error()));
  return {};
}

}  // namespace riskgate::agent
