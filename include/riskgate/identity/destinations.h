// Who a request is addressed to: the destination identity that `to:` rules match and pair blocks
// name. A gateway Service's is fixed per Service (its declared identity, else the owner of its
// upstream's address); a transparent Service's is the owner of each connection's original
// destination. An address's owner is the registry's CIDRs (longest prefix, as the kernel's ipcache
// has them), else the local workload whose cgroup holds the listening socket, else world.
//
// Everything that reads the system (netlink sock_diag, getifaddrs) happens in refresh(); a request
// costs a snapshot load and lookups in sorted vectors: no allocation, no system call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/identity.h>
#include <riskgate/common/net.h>
#include <riskgate/common/result.h>

#include <riskgate/identity/registry.h>

namespace riskgate::identity {

struct Destination {
  IdentityId id = 0;
  std::string_view name = "world";  // into the table that answered: valid while it is held
};

// One listener of the proxy, as the agent configures it.
struct DestinationService {
  std::string service;                       // RequestView::service
  std::string declared;                      // policy Service.identity; empty = the upstream's owner
  std::optional<sockaddr_storage> upstream;  // gateway; nullopt: transparent (each original destination)
};

// A listening TCP socket of this network namespace and the cgroup of the process that opened it.
struct LocalListener {
  net::MappedAddr address{};  // :: or ::ffff:0.0.0.0 listens on every local address
  std::uint16_t port = 0;
  std::uint64_t cgroup_id = 0;
};
struct LocalSockets {
  std::vector<LocalListener> listeners;
  std::vector<net::MappedAddr> addresses;  // of this namespace's interfaces
};
// The TCP listeners (sock_diag, with each socket's cgroup id) and interface addresses of this
// network namespace.
Result<LocalSockets> scan_local_sockets();

// Immutable once built.
class DestinationTable {
 public:
  DestinationTable() = default;
  DestinationTable(const std::vector<DestinationService> &services, const RegistrySnapshot &registry,
                   const LocalSockets &local);

  // The service's fixed destination, or (transparent, unknown service) the owner of `destination`.
  Destination of(std::string_view service, const sockaddr_storage &destination) const;
  Destination owner_of(const sockaddr_storage &address) const;

  bool operator==(const DestinationTable &) const = default;

 private:
  struct Prefixes {  // one prefix length: masked addresses, sorted, each with its owner
    std::uint32_t bits = 0;
    std::vector<std::pair<net::MappedAddr, std::size_t>> owners;
    bool operator==(const Prefixes &) const = default;
  };
  struct Listening {  // sorted by (port, address)
    std::uint16_t port = 0;
    net::MappedAddr address{};
    std::size_t owner = 0;
    bool operator==(const Listening &) const = default;
  };
  struct Fixed {  // sorted by service
    std::string service;
    std::size_t owner = 0;
    bool operator==(const Fixed &) const = default;
  };

  static std::size_t declared_owner(const RegistrySnapshot &registry, std::string_view name);
  std::size_t owner_index(const sockaddr_storage &address) const;
  std::size_t listener_owner(const net::MappedAddr &address, std::uint16_t port) const;
  bool local_address(const net::MappedAddr &address) const;
  Destination at(std::size_t owner) const;

  std::vector<std::pair<IdentityId, std::string>> owners_{{0, "world"}};  // [0] is world
  std::vector<Prefixes> prefixes_;                                        // longest first
  std::vector<Listening> listening_;
  std::vector<net::MappedAddr> local_addresses_;  // sorted
  std::vector<Fixed> fixed_;
};

// The current table, rebuilt when the services (policy reload), the registry or the local
// listeners change.
class DestinationIdentities {
 public:
  using Scan = std::function<Result<LocalSockets>()>;
  explicit DestinationIdentities(Scan scan = scan_local_sockets);

  void configure(std::vector<DestinationService> services);
  // Scans the local sockets and publishes the table they and `registry` give; true when it changed.
  // A failed scan keeps the listeners of the last one that worked.
  Result<bool> refresh(const RegistrySnapshot &registry);
  std::shared_ptr<const DestinationTable> table() const { return table_.load(std::memory_order_acquire); }

 private:
  Scan scan_;
  std::mutex mu_;  // policy reloads and housekeeping both refresh
  std::vector<DestinationService> services_;
  LocalSockets local_;
  std::atomic<std::shared_ptr<const DestinationTable>> table_;
};

}  // namespace riskgate::identity
