#include <riskgate/identity/registry.h>
#include <riskgate/common/errors.h>
#include <riskgate/policy/identity_file.h>

#include <dirent.h>
#include <fnmatch.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/format.h>

namespace riskgate::identity {
namespace {

std::string where(const policy::SourceLocation &loc)
{
  if (loc.file.empty())
    return "";
  return fmt::format("{}:{}:{}: ", loc.file, loc.line, loc.column);
}

// Directory names under which Kubernetes puts a pod's containers, for both cgroup drivers:
// cgroupfs ".../pod<uid>/..." and systemd ".../kubepods-burstable-pod<uid with _>.slice/...".
std::vector<std::string> pod_dir_markers(const std::string &uid)
{
  std::string underscored = uid;
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  if (underscored == uid)
    return {"pod" + uid};
  return {"pod" + uid, "pod" + underscored};
}

}  // namespace

IdentityId derive_identity_id(std::string_view name)
{
  const auto digest = sha256(name);
  const std::uint32_t h = (std::uint32_t{digest[0]} << 24) | (std::uint32_t{digest[1]} << 16) |
                          (std::uint32_t{digest[2]} << 8) | digest[3];
  return kFirstDerivedId + h % (0xffffffffu - kFirstDerivedId + 1);
}

const WorkloadIdentity *RegistrySnapshot::find(IdentityId id) const
{
  auto it = by_id.find(id);
  return it == by_id.end() ? nullptr : &identities[it->second];
}

const WorkloadIdentity *RegistrySnapshot::find(std::string_view name) const
{
  auto it = std::lower_bound(identities.begin(), identities.end(), name,
                             [](const WorkloadIdentity &w, std::string_view n) { return w.name < n; });
  return it != identities.end() && it->name == name ? &*it : nullptr;
}

std::string_view RegistrySnapshot::name_of(IdentityId id) const
{
  const auto *w = find(id);
  return w ? std::string_view(w->name) : std::string_view("world");
}

std::vector<IdentityRecord> RegistrySnapshot::records() const
{
  std::vector<IdentityRecord> out;
  out.reserve(identities.size());
  for (const auto &w : identities) out.push_back({w.id, w.name, w.cgroup_ids, w.cidrs});
  return out;
}

WorkloadRegistry::WorkloadRegistry(std::string cgroup_root)
    : cgroup_root_(std::move(cgroup_root)), snapshot_(std::make_shared<const RegistrySnapshot>())
{
}

Result<void> WorkloadRegistry::add_identity(Specs &specs, const policy::Identity &identity)
{
  const std::string at = where(identity.where);
  if (identity.name.empty() || identity.name == "world")
    return make_error(at + "an identity needs a name other than \"world\"");
  Spec &spec = specs[identity.name];
  if (!identity.spiffe.empty())
    spec.spiffe = identity.spiffe;
  for (const auto &sel : identity.selectors) {
    if (!sel.cgroup.empty()) {
      if (sel.cgroup.front() != '/')
        return make_error(
            fmt::format("{}identity {}: cgroup glob \"{}\" must start with '/' (relative to the "
                        "cgroup v2 root)",
                        at, identity.name, sel.cgroup));
      spec.cgroup_globs.push_back(sel.cgroup);
    }
    if (!sel.k8s_namespace.empty())
      spec.kubernetes.emplace_back(sel.k8s_namespace,
                                   sel.k8s_service_account.empty() ? "*" : sel.k8s_service_account);
    if (!sel.cidr.empty()) {
      auto cidr = net::parse_prefix(sel.cidr);
      if (!cidr)
        return make_error(fmt::format("{}identity {}: {}", at, identity.name, cidr.error()));
      spec.cidrs.push_back(*cidr);
    }
  }
  return {};
}

Result<void> WorkloadRegistry::set_policy_identities(const std::vector<policy::Identity> &identities)
{
  Specs specs;
  for (const auto &identity : identities)
    if (auto added = add_identity(specs, identity); !added)
      return added;
  std::lock_guard lock(mu_);
  policy_specs_ = std::move(specs);
  return {};
}

void WorkloadRegistry::set_kubernetes_pods(std::vector<KubernetesPod> pods)
{
  std::lock_guard lock(mu_);
  pods_ = std::move(pods);
}

void WorkloadRegistry::set_static_file(std::string path)
{
  std::lock_guard lock(mu_);
  static_path_ = std::move(path);
  static_stamp_.reset();
}

Result<WorkloadRegistry::Specs> WorkloadRegistry::parse_static(const std::string &text)
{
  const auto loaded = policy::load_identity_file(text, static_path_);
  if (!loaded.ok())
    return make_error(policy::to_string(loaded.diagnostics));
  Specs specs;
  for (const auto &identity : *loaded.identities)
    if (auto added = add_identity(specs, identity); !added)
      return make_error(added.error());
  return specs;
}

Result<bool> WorkloadRegistry::poll_static_file()
{
  std::lock_guard lock(mu_);
  if (static_path_.empty())
    return false;
  auto text = read_if_changed(static_path_, static_stamp_);
  if (!text)
    return make_error("identity file " + text.error());
  if (!*text)
    return false;
  auto specs = parse_static(**text);
  if (!specs)
    return make_error(specs.error() + " (previous identities stay in force)");
  static_specs_ = std::move(*specs);
  return true;
}

void WorkloadRegistry::adopt_ids(const std::map<IdentityId, std::string> &ids)
{
  std::lock_guard lock(mu_);
  std::set<IdentityId> used;
  for (const auto &[name, id] : assigned_) used.insert(id);
  for (const auto &[id, name] : ids)
    if (id != 0 && !assigned_.count(name) && used.insert(id).second)
      assigned_[name] = id;
}

WorkloadRegistry::Specs WorkloadRegistry::merged_specs() const
{
  Specs specs = policy_specs_;
  for (const auto &[name, spec] : static_specs_) {
    Spec &merged = specs[name];
    if (merged.spiffe.empty())
      merged.spiffe = spec.spiffe;
    merged.cgroup_globs.insert(merged.cgroup_globs.end(), spec.cgroup_globs.begin(), spec.cgroup_globs.end());
    merged.kubernetes.insert(merged.kubernetes.end(), spec.kubernetes.begin(), spec.kubernetes.end());
    merged.cidrs.insert(merged.cidrs.end(), spec.cidrs.begin(), spec.cidrs.end());
  }
  return specs;
}

std::shared_ptr<RegistrySnapshot> WorkloadRegistry::assign_ids(const Specs &specs)
{
  auto snap = std::make_shared<RegistrySnapshot>();
  std::set<IdentityId> used;
  for (const auto &[name, id] : assigned_) used.insert(id);
  for (const auto &[name, spec] : specs) {
    auto it = assigned_.find(name);
    if (it == assigned_.end()) {
      IdentityId id = derive_identity_id(name);
      while (used.count(id))  // a collision between two names: the later name (in order) moves on
        id = id == 0xffffffffu ? kFirstDerivedId : id + 1;
      used.insert(id);
      it = assigned_.emplace(name, id).first;
    }
    WorkloadIdentity w;
    w.id = it->second;
    w.name = name;
    w.spiffe = spec.spiffe;
    w.cidrs = spec.cidrs;
    snap->by_id.emplace(w.id, snap->identities.size());
    snap->identities.push_back(std::move(w));
  }
  return snap;
}

// Each pod belongs to the first identity, in name order, whose kubernetes selector matches: its IPs
// join that identity's CIDRs, and its uid marks the directories of its cgroups.
WorkloadRegistry::Claims WorkloadRegistry::claim_pods(const Specs &specs, RegistrySnapshot &snap) const
{
  Claims markers;
  for (const auto &pod : pods_) {
    std::size_t index = 0;
    for (const auto &[name, spec] : specs) {
      const bool match = std::any_of(spec.kubernetes.begin(), spec.kubernetes.end(), [&](const auto &sel) {
        return sel.first == pod.namespace_name && (sel.second == "*" || sel.second == pod.service_account);
      });
      if (match) {
        for (const auto &marker : pod_dir_markers(pod.uid)) markers.emplace_back(marker, index);
        for (const auto &ip : pod.ips) {
          auto cidr = net::parse_prefix(ip);
          if (cidr)
            snap.identities[index].cidrs.push_back(*cidr);
          else
            snap.warnings.push_back(fmt::format("pod {}/{}: {}", pod.namespace_name, pod.name, cidr.error()));
        }
        break;
      }
      ++index;
    }
  }
  return markers;
}

WorkloadRegistry::Claims WorkloadRegistry::claim_globs(const Specs &specs)
{
  Claims globs;
  std::size_t index = 0;
  for (const auto &[name, spec] : specs) {
    for (const auto &glob : spec.cgroup_globs) globs.emplace_back(glob, index);
    ++index;
  }
  return globs;
}

namespace {

// Depth-first walk of the cgroup tree; a cgroup without a match of its own inherits its parent's
// identity (the processes of a service's sub-cgroups are still that service).
class CgroupWalk {
 public:
  using Claims = std::vector<std::pair<std::string, std::size_t>>;
  CgroupWalk(const Claims &pod_markers, const Claims &globs, RegistrySnapshot &snap)
      : pod_markers_(pod_markers), globs_(globs), snap_(snap)
  {
  }

  Result<void> walk(const std::string &abs, const std::string &rel, std::size_t inherited)
  {
    DIR *dir = ::opendir(abs.c_str());
    if (!dir) {
      if (errno == ENOENT)  // removed while we walked
        return {};
      return make_error(fmt::format("scan cgroups: opendir {}: {}", abs, errno_text()));
    }
    std::vector<std::pair<std::string, std::uint64_t>> children;
    while (const dirent *entry = ::readdir(dir)) {
      if (entry->d_type != DT_DIR || entry->d_name[0] == '.')
        continue;
      children.emplace_back(entry->d_name, entry->d_ino);
    }
    ::closedir(dir);
    for (const auto &[name, inode] : children) {
      const std::string child_rel = rel + "/" + name;
      const std::size_t own = own_identity(name, child_rel);
      const std::size_t effective = own != kNone ? own : inherited;
      // d_ino of a cgroup2 directory is the kernfs id, which is the cgroup id bpf sees.
      if (effective != kNone)
        snap_.identities[effective].cgroup_ids.push_back(inode);
      if (auto r = walk(abs + "/" + name, child_rel, effective); !r)
        return r;
    }
    return {};
  }

  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

 private:
  // A pod's directory first (its uid is exact), else the first glob that matches, warning when
  // another identity's glob matches too.
  std::size_t own_identity(const std::string &name, const std::string &rel)
  {
    for (const auto &[marker, index] : pod_markers_)
      if (name.find(marker) != std::string::npos)
        return index;
    std::size_t own = kNone;
    for (const auto &[glob, index] : globs_) {
      if (::fnmatch(glob.c_str(), rel.c_str(), 0) != 0)
        continue;
      if (own == kNone)
        own = index;
      else if (own != index)
        snap_.warnings.push_back(fmt::format("cgroup {} matches identities {} and {}; {} wins", rel,
                                             snap_.identities[own].name, snap_.identities[index].name,
                                             snap_.identities[own].name));
    }
    return own;
  }

  const Claims &pod_markers_;
  const Claims &globs_;
  RegistrySnapshot &snap_;
};

}  // namespace

Result<std::shared_ptr<const RegistrySnapshot>> WorkloadRegistry::rescan()
{
  std::lock_guard lock(mu_);
  const Specs specs = merged_specs();
  auto snap = assign_ids(specs);
  const Claims pod_markers = claim_pods(specs, *snap);
  const Claims globs = claim_globs(specs);
  if (!cgroup_root_.empty())
    if (auto walked = CgroupWalk(pod_markers, globs, *snap).walk(cgroup_root_, "", CgroupWalk::kNone);
        !walked)
      return make_error(walked.error());
  for (auto &w : snap->identities) {
    std::sort(w.cgroup_ids.begin(), w.cgroup_ids.end());
    w.cgroup_ids.erase(std::unique(w.cgroup_ids.begin(), w.cgroup_ids.end()), w.cgroup_ids.end());
  }
  std::shared_ptr<const RegistrySnapshot> published = std::move(snap);
  snapshot_.store(published, std::memory_order_release);
  return published;
}

}  // namespace riskgate::identity
