#include <riskgate/identity/destinations.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace riskgate::identity {
namespace {

net::MappedAddr masked(const net::MappedAddr &address, std::uint32_t bits)
{
  net::MappedAddr out{};
  for (std::uint32_t i = 0; i < 16 && bits > 0; ++i, bits = bits > 8 ? bits - 8 : 0)
    out[i] = static_cast<std::uint8_t>(address[i] & (bits >= 8 ? 0xff : 0xff << (8 - bits)));
  return out;
}

// Transparent-mode destinations are any address; only the two families have an owner.
std::optional<net::MappedAddr> mapped(const sockaddr_storage &address)
{
  if (address.ss_family != AF_INET && address.ss_family != AF_INET6)
    return std::nullopt;
  return *net::to_mapped(address);
}

bool v4_mapped(const net::MappedAddr &address)
{
  return std::all_of(address.begin(), address.begin() + 10, [](auto b) { return b == 0; }) &&
         address[10] == 0xff && address[11] == 0xff;
}

bool wildcard(const net::MappedAddr &address)
{
  const auto zero = [](auto b) { return b == 0; };
  return std::all_of(address.begin(), address.end(), zero) ||
         (v4_mapped(address) && std::all_of(address.begin() + 12, address.end(), zero));
}

bool loopback(const net::MappedAddr &address)
{
  static constexpr net::MappedAddr v6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return address == v6 || (v4_mapped(address) && address[12] == 127);
}

}  // namespace

DestinationTable::DestinationTable(const std::vector<DestinationService> &services,
                                   const RegistrySnapshot &registry, const LocalSockets &local)
{
  std::unordered_map<std::uint64_t, std::size_t> by_cgroup;
  // Like the kernel's ipcache, which sync_identities writes in this order: a prefix two identities
  // claim is the later one's.
  std::map<std::uint32_t, std::map<net::MappedAddr, std::size_t>, std::greater<>> prefixes;
  for (const auto &workload : registry.identities) {
    const std::size_t owner = owners_.size();
    owners_.emplace_back(workload.id, workload.name);
    for (const auto cgroup_id : workload.cgroup_ids) by_cgroup.emplace(cgroup_id, owner);
    for (const auto &cidr : workload.cidrs) {
      const auto key = net::to_mapped_prefix(cidr);
      prefixes[key.bits][masked(key.addr, key.bits)] = owner;
    }
  }
  for (const auto &[bits, owners] : prefixes) prefixes_.push_back({bits, {owners.begin(), owners.end()}});
  for (const auto &listener : local.listeners)
    if (const auto it = by_cgroup.find(listener.cgroup_id); it != by_cgroup.end())
      listening_.push_back({listener.port, listener.address, it->second});
  std::sort(listening_.begin(), listening_.end(), [](const Listening &a, const Listening &b) {
    return std::tie(a.port, a.address) < std::tie(b.port, b.address);
  });
  local_addresses_ = local.addresses;
  std::sort(local_addresses_.begin(), local_addresses_.end());
  for (const auto &service : services) {
    if (!service.declared.empty())
      fixed_.push_back({service.service, declared_owner(registry, service.declared)});
    else if (service.upstream)
      fixed_.push_back({service.service, owner_index(*service.upstream)});
  }
  std::sort(fixed_.begin(), fixed_.end(),
            [](const Fixed &a, const Fixed &b) { return a.service < b.service; });
}

// owners_ follows the registry's order after world.
std::size_t DestinationTable::declared_owner(const RegistrySnapshot &registry, std::string_view name)
{
  const auto *workload = registry.find(name);
  return workload ? 1 + static_cast<std::size_t>(workload - registry.identities.data()) : 0;
}

Destination DestinationTable::of(std::string_view service, const sockaddr_storage &destination) const
{
  const auto it = std::lower_bound(fixed_.begin(), fixed_.end(), service,
                                   [](const Fixed &f, std::string_view s) { return f.service < s; });
  if (it != fixed_.end() && it->service == service)
    return at(it->owner);
  return owner_of(destination);
}

Destination DestinationTable::owner_of(const sockaddr_storage &address) const
{
  return at(owner_index(address));
}

std::size_t DestinationTable::owner_index(const sockaddr_storage &address) const
{
  const auto key = mapped(address);
  if (!key)
    return 0;
  for (const auto &group : prefixes_) {
    const auto network = masked(*key, group.bits);
    const auto it =
        std::lower_bound(group.owners.begin(), group.owners.end(), network,
                         [](const auto &entry, const net::MappedAddr &a) { return entry.first < a; });
    if (it != group.owners.end() && it->first == network)
      return it->second;
  }
  return listener_owner(*key, net::port_of(address));
}

// The socket listening on exactly this address, else one listening on every address of a port
// this address is local to.
std::size_t DestinationTable::listener_owner(const net::MappedAddr &address, std::uint16_t port) const
{
  auto it = std::lower_bound(listening_.begin(), listening_.end(), port,
                             [](const Listening &l, std::uint16_t p) { return l.port < p; });
  std::size_t any = 0;
  for (; it != listening_.end() && it->port == port; ++it) {
    if (it->address == address)
      return it->owner;
    if (any == 0 && wildcard(it->address))
      any = it->owner;
  }
  return any != 0 && local_address(address) ? any : 0;
}

bool DestinationTable::local_address(const net::MappedAddr &address) const
{
  return loopback(address) || std::binary_search(local_addresses_.begin(), local_addresses_.end(), address);
}

Destination DestinationTable::at(std::size_t owner) const
{
  return {owners_[owner].first, owners_[owner].second};
}

DestinationIdentities::DestinationIdentities(Scan scan)
    : scan_(std::move(scan)), table_(std::make_shared<const DestinationTable>())
{
}

void DestinationIdentities::configure(std::vector<DestinationService> services)
{
  std::lock_guard lock(mu_);
  services_ = std::move(services);
}

Result<bool> DestinationIdentities::refresh(const RegistrySnapshot &registry)
{
  std::lock_guard lock(mu_);
  auto scanned = scan_();
  if (scanned)
    local_ = std::move(*scanned);
  auto table = std::make_shared<const DestinationTable>(services_, registry, local_);
  const bool changed = !(*table == *table_.load(std::memory_order_acquire));
  if (changed)
    table_.store(std::move(table), std::memory_order_release);
  if (!scanned)
    return make_error("local listeners: " + scanned.error() + " (the last scan's stay in force)");
  return changed;
}

}  // namespace riskgate::identity
