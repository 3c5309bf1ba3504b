// Workload identity registry: which cgroups and addresses belong to which identity.
//
// Sources, merged by identity name: the policy's Identity documents, a static file of the same
// shape, and (in a cluster) the pods of this node from the Kubernetes API. The registry scans the
// cgroup v2 tree to turn cgroup globs and pod uids into cgroup ids, and publishes an immutable
// snapshot: per identity its stable numeric id, its cgroup ids and its CIDRs. The datapath writes
// the snapshot into the kernel maps; the resolver reads names from it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <riskgate/common/identity.h>
#include <riskgate/policy/policy.h>
#include <riskgate/common/result.h>

#include <riskgate/identity/encoding.h>
#include <riskgate/common/net.h>

namespace riskgate::identity {

// Ids 1..kFirstDerivedId-1 are reserved for riskgate's own use (host, proxy); names map into the
// rest of the u32 range.
inline constexpr IdentityId kFirstDerivedId = 256;
// The id a name gets unless it collides: derived from SHA-256 of the name, so that the same name
// has the same id on every node and across restarts.
IdentityId derive_identity_id(std::string_view name);

struct WorkloadIdentity {
  IdentityId id = 0;
  std::string name;
  std::string spiffe;
  std::vector<std::uint64_t> cgroup_ids;  // sorted; every cgroup whose path (or an ancestor's) matched
  std::vector<net::IpPrefix> cidrs;       // policy/static CIDRs, then pod IPs as host prefixes
};

struct KubernetesPod {
  std::string name;
  std::string namespace_name;
  std::string service_account;
  std::string uid;
  std::vector<std::string> ips;
};

struct RegistrySnapshot {
  std::vector<WorkloadIdentity> identities;  // sorted by name
  std::vector<std::string> warnings;         // conflicts (one cgroup claimed by two identities), bad pod IPs
  const WorkloadIdentity *find(IdentityId id) const;
  const WorkloadIdentity *find(std::string_view name) const;
  std::string_view name_of(IdentityId id) const;  // "world" for 0 and unknown ids
  // What the datapath writes into the kernel (PinnedMaps::sync_identities).
  std::vector<IdentityRecord> records() const;

  std::unordered_map<IdentityId, std::size_t> by_id;
};

class WorkloadRegistry {
 public:
  explicit WorkloadRegistry(std::string cgroup_root);

  // Each source replaces its own contribution; the next rescan() publishes the union.
  Result<void> set_policy_identities(const std::vector<policy::Identity> &identities);
  void set_kubernetes_pods(std::vector<KubernetesPod> pods);
  // A static identity file (YAML, `identities:` list of {name, spiffe, selectors}); reloaded by
  // poll_static_file() when it changes. A bad version keeps the previous one (error: file:line:column).
  void set_static_file(std::string path);
  Result<bool> poll_static_file();

  // Ids already in use (the kernel's pinned id->name map, PinnedMaps::identity_names): kept for
  // these names so that a restarted agent, the CLI and still-installed blocks agree.
  void adopt_ids(const std::map<IdentityId, std::string> &ids);

  // Walks the cgroup tree and publishes a new snapshot.
  Result<std::shared_ptr<const RegistrySnapshot>> rescan();
  std::shared_ptr<const RegistrySnapshot> snapshot() const
  {
    return snapshot_.load(std::memory_order_acquire);
  }

 private:
  struct Spec {
    std::string spiffe;
    std::vector<std::string> cgroup_globs;
    std::vector<std::pair<std::string, std::string>> kubernetes;  // namespace, service account ("*": any)
    std::vector<net::IpPrefix> cidrs;
  };
  using Specs = std::map<std::string, Spec>;
  static Result<void> add_identity(Specs &specs, const policy::Identity &identity);
  Result<Specs> parse_static(const std::string &text);

  // rescan()'s steps, under mu_. A claim ties a cgroup directory marker (a pod's uid) or a cgroup
  // glob to the index of an identity in the snapshot.
  using Claims = std::vector<std::pair<std::string, std::size_t>>;
  Specs merged_specs() const;
  std::shared_ptr<RegistrySnapshot> assign_ids(const Specs &specs);
  Claims claim_pods(const Specs &specs, RegistrySnapshot &snap) const;
  static Claims claim_globs(const Specs &specs);

  std::string cgroup_root_;
  std::mutex mu_;  // sources and id assignment; never taken by readers of the snapshot
  Specs policy_specs_, static_specs_;
  std::vector<KubernetesPod> pods_;
  std::string static_path_;
  std::optional<FileStamp> static_stamp_;
  std::map<std::string, IdentityId> assigned_;  // name -> id, sticky for the life of the process
  std::atomic<std::shared_ptr<const RegistrySnapshot>> snapshot_;
};

}  // namespace riskgate::identity
