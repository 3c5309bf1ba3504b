// Workload registry: selectors -> stable ids, cgroup ids and CIDRs, over a cgroup-shaped directory
// tree made in a temporary directory (the real cgroup tree is covered by the integration test).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <riskgate/identity/registry.h>

using namespace riskgate;
using namespace riskgate::identity;
namespace fs = std::filesystem;

namespace {

struct FakeCgroupTree {
  fs::path root;
  FakeCgroupTree()
  {
    char tmpl[] = "/tmp/rgt-cgtree-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    root = tmpl;
  }
  ~FakeCgroupTree() { fs::remove_all(root); }
  std::uint64_t make(const std::string &rel) const
  {
    fs::create_directories(root / rel.substr(1));
    struct stat st {};
    REQUIRE(::stat((root / rel.substr(1)).c_str(), &st) == 0);
    return st.st_ino;
  }
  // Files beside the directories are skipped by the walk, and go away with the tree.
  std::string write(const std::string &name, const std::string &text) const
  {
    const auto tmp = root / (name + ".tmp");
    std::ofstream(tmp) << text;
    fs::rename(tmp, root / name);
    return (root / name).string();
  }
};

policy::Identity make_identity(const std::string &name, std::vector<policy::IdentitySelector> selectors)
{
  policy::Identity id;
  id.name = name;
  id.selectors = std::move(selectors);
  return id;
}

policy::IdentitySelector cgroup(const std::string &glob)
{
  return {glob, "", "", ""};
}
policy::IdentitySelector cidr(const std::string &c)
{
  return {"", "", "", c};
}
policy::IdentitySelector k8s(const std::string &ns, const std::string &sa)
{
  return {"", ns, sa, ""};
}

}  // namespace

TEST_CASE("ids are derived from names: the same on every start, never 0, never reserved")
{
  FakeCgroupTree tree;
  std::vector<policy::Identity> ids = {make_identity("frontend", {}), make_identity("orders", {}),
                                       make_identity("batch", {})};
  WorkloadRegistry first(tree.root.string()), second(tree.root.string());
  REQUIRE(first.set_policy_identities(ids).ok());
  std::reverse(ids.begin(), ids.end());  // order of documents does not matter
  REQUIRE(second.set_policy_identities(ids).ok());
  auto a = first.rescan(), b = second.rescan();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->identities.size() == 3);
  for (const auto &w : (*a)->identities) {
    CHECK(w.id >= kFirstDerivedId);
    CHECK(w.id == derive_identity_id(w.name));
    CHECK((*b)->find(w.name)->id == w.id);
    CHECK((*a)->name_of(w.id) == w.name);
  }
  CHECK((*a)->name_of(0) == "world");
  CHECK((*a)->name_of(12345) == "world");
}

TEST_CASE("ids already in the kernel's map are kept; a colliding name moves to the next free id")
{
  FakeCgroupTree tree;
  WorkloadRegistry registry(tree.root.string());
  const IdentityId frontend_id = derive_identity_id("frontend");
  registry.adopt_ids({{4242, "orders"}, {frontend_id, "legacy"}});
  REQUIRE(registry.set_policy_identities({make_identity("frontend", {}), make_identity("orders", {})}).ok());
  auto snap = registry.rescan();
  REQUIRE(snap.ok());
  CHECK((*snap)->find("orders")->id == 4242);
  CHECK((*snap)->find("frontend")->id == frontend_id + 1);
  // Ids stay put for the life of the process, even when identities come and go.
  REQUIRE(registry.set_policy_identities({make_identity("orders", {})}).ok());
  REQUIRE(registry.rescan().ok());
  REQUIRE(registry.set_policy_identities({make_identity("frontend", {}), make_identity("orders", {})}).ok());
  CHECK((*registry.rescan())->find("frontend")->id == frontend_id + 1);
}

TEST_CASE("cgroup globs and Kubernetes pods map cgroups (and their children) to identities")
{
  FakeCgroupTree tree;
  const auto fe = tree.make("/system.slice/frontend.service");
  const auto fe_child = tree.make("/system.slice/frontend.service/worker");
  const auto other = tree.make("/system.slice/other.service");
  const auto pod =
      tree.make("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b-3c4d.slice");
  (void)pod;
  const auto pod_sys =
      tree.make("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice");
  const auto container = tree.make(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice/"
      "cri-containerd-abc.scope");
  const auto pod_cgroupfs = tree.make("/kubepods/besteffort/pod9f9f-0000/ctr");
  const auto batch = tree.make("/batch/job-1");

  WorkloadRegistry registry(tree.root.string());
  REQUIRE(registry
              .set_policy_identities(
                  {make_identity("frontend", {cgroup("/system.slice/frontend.service"), cidr("10.0.1.0/24")}),
                   make_identity("orders", {k8s("shop", "orders")}),
                   make_identity("payments", {k8s("pay", "")}), make_identity("batch", {cgroup("/batch/*")})})
              .ok());
  registry.set_kubernetes_pods({{"orders-7d9", "shop", "orders", "1a2b-3c4d", {"10.244.1.7", "fd00::7"}},
                                {"pay-1", "pay", "default", "9f9f-0000", {"10.244.1.8"}},
                                {"stranger", "shop", "intruder", "dead-beef", {"10.244.1.9"}}});
  auto snap = registry.rescan();
  REQUIRE_MESSAGE(snap.ok(), snap.error());
  const auto *frontend = (*snap)->find("frontend");
  CHECK(frontend->cgroup_ids == std::vector<std::uint64_t>{std::min(fe, fe_child), std::max(fe, fe_child)});
  CHECK(frontend->cidrs == std::vector<net::IpPrefix>{*net::parse_prefix("10.0.1.0/24")});
  const auto *orders = (*snap)->find("orders");
  CHECK(std::count(orders->cgroup_ids.begin(), orders->cgroup_ids.end(), container) == 1);
  CHECK(std::count(orders->cgroup_ids.begin(), orders->cgroup_ids.end(), pod_sys) == 1);
  CHECK(orders->cidrs ==
        std::vector<net::IpPrefix>{*net::parse_prefix("10.244.1.7"), *net::parse_prefix("fd00::7")});
  // The kernel's form: one record per identity, as PinnedMaps::sync_identities takes it.
  const auto records = (*snap)->records();
  REQUIRE(records.size() == 4);
  const auto rec =
      std::find_if(records.begin(), records.end(), [](const auto &r) { return r.name == "orders"; });
  CHECK(rec->id == orders->id);
  CHECK(rec->cgroup_ids == orders->cgroup_ids);
  CHECK(rec->cidrs == orders->cidrs);
  const auto *payments = (*snap)->find("payments");
  CHECK(std::count(payments->cgroup_ids.begin(), payments->cgroup_ids.end(), pod_cgroupfs) == 1);
  CHECK((*snap)->find("batch")->cgroup_ids == std::vector<std::uint64_t>{batch});
  for (const auto &w : (*snap)->identities)
    CHECK(std::count(w.cgroup_ids.begin(), w.cgroup_ids.end(), other) == 0);

  // A new cgroup shows up on the next rescan.
  const auto fe2 = tree.make("/system.slice/frontend.service/worker2");
  const auto *again = (*registry.rescan())->find("frontend");
  CHECK(std::count(again->cgroup_ids.begin(), again->cgroup_ids.end(), fe2) == 1);
}

TEST_CASE("one cgroup claimed by two identities: the first in name order wins, with a warning")
{
  FakeCgroupTree tree;
  const auto cg = tree.make("/system.slice/shared.service");
  WorkloadRegistry registry(tree.root.string());
  REQUIRE(registry
              .set_policy_identities({make_identity("b", {cgroup("/system.slice/*")}),
                                      make_identity("a", {cgroup("/system.slice/shared.service")})})
              .ok());
  auto snap = *registry.rescan();
  CHECK(snap->find("a")->cgroup_ids == std::vector<std::uint64_t>{cg});
  CHECK(snap->find("b")->cgroup_ids.empty());
  REQUIRE(snap->warnings.size() == 1);
  CHECK(snap->warnings[0] == "cgroup /system.slice/shared.service matches identities a and b; a wins");
}

TEST_CASE("bad selectors are refused with the identity's location")
{
  WorkloadRegistry registry("");
  auto id = make_identity("frontend", {cgroup("system.slice/x.service")});
  id.where = {"policies/ids.yaml", 3, 5};
  auto r = registry.set_policy_identities({id});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("policies/ids.yaml:3:5: identity frontend: cgroup glob") == 0);
  CHECK_FALSE(registry.set_policy_identities({make_identity("x", {cidr("10.0.0.1/40")})}).ok());
  CHECK_FALSE(registry.set_policy_identities({make_identity("world", {})}).ok());
}

TEST_CASE("static identity file: merged with the policy, reloaded on change, bad versions keep the old one")
{
  FakeCgroupTree tree;
  const auto cg = tree.make("/system.slice/legacy.service");
  WorkloadRegistry registry(tree.root.string());
  REQUIRE(registry.set_policy_identities({make_identity("frontend", {cidr("10.0.1.0/24")})}).ok());
  const auto path = tree.write("ids.yaml", R"(identities:
  - name: legacy
    spiffe: spiffe://example.org/legacy
    selectors:
      - cgroup: /system.slice/legacy.service
  - name: frontend
    selectors:
      - cidr: 10.0.2.0/24
)");
  registry.set_static_file(path);
  REQUIRE(*registry.poll_static_file());
  auto snap = *registry.rescan();
  CHECK(snap->find("legacy")->cgroup_ids == std::vector<std::uint64_t>{cg});
  CHECK(snap->find("legacy")->spiffe == "spiffe://example.org/legacy");
  CHECK(snap->find("frontend")->cidrs.size() == 2);
  CHECK(*registry.poll_static_file() == false);

  tree.write("ids.yaml", "identities:\n  - name: legacy\n    selectors:\n      - cidr: 10.0.0.300/8\n");
  auto bad = registry.poll_static_file();
  REQUIRE_FALSE(bad.ok());
  INFO(bad.error());
  CHECK(bad.error().find(path + ":4:15: '10.0.0.300' is not an IPv4 or IPv6 address") == 0);
  CHECK((*registry.rescan())->find("legacy") != nullptr);

  tree.write("ids.yaml", "identities: [name: {]\n");
  bad = registry.poll_static_file();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find(path + ":1:") == 0);
  tree.write("ids.yaml", "identities:\n  - name: legacy\n    selectors:\n      - {}\n");
  CHECK(registry.poll_static_file().error().find(
            path + ":4:9: a selector has exactly one of cgroup, kubernetes, cidr") == 0);
}

TEST_CASE(
    "static identity file: unknown keys and multi-key selectors are refused as in a policy, all at once")
{
  FakeCgroupTree tree;
  WorkloadRegistry registry(tree.root.string());
  const auto path = tree.write("ids.yaml", R"(identities:
  - nmae: legacy
    selectors:
      - {cgroup: /system.slice/legacy.service, cidr: 10.0.0.0/8}
      - {cgroups: /x}
  - name: batch
    selectors: [{kubernetes: {namespace: jobs, account: batch}}]
)");
  registry.set_static_file(path);
  const auto bad = registry.poll_static_file();
  REQUIRE_FALSE(bad.ok());
  INFO(bad.error());
  CHECK(bad.error().find(path + ":2:5: unknown key 'nmae' in an identity (did you mean 'name'?)") == 0);
  CHECK(bad.error().find(path + ":2:5: an identity needs a name") != std::string::npos);
  CHECK(bad.error().find(path + ":4:9: a selector has exactly one of cgroup, kubernetes, cidr") !=
        std::string::npos);
  CHECK(bad.error().find(path + ":5:10: unknown key 'cgroups' in a selector (did you mean 'cgroup'?)") !=
        std::string::npos);
  CHECK(bad.error().find(path + ":7:48: unknown key 'account' in kubernetes selector") != std::string::npos);
  CHECK(bad.error().ends_with(" (previous identities stay in force)"));

  // The same selector in a kind: Identity document gets the same words from the same code.
  const auto policy = policy::load_text(R"(apiVersion: riskgate.dev/v1
kind: Identity
metadata: {name: legacy}
spec:
  selectors:
    - {cgroup: /system.slice/legacy.service, cidr: 10.0.0.0/8}
)",
                                        "p.yaml");
  REQUIRE(policy.diagnostics.size() == 1);
  CHECK(policy::to_string(policy.diagnostics[0]) ==
        "p.yaml:6:7: a selector has exactly one of cgroup, kubernetes, cidr");
}

TEST_CASE("static identity file: the top level is an identities list and nothing else")
{
  FakeCgroupTree tree;
  WorkloadRegistry registry(tree.root.string());
  const auto path = tree.write("ids.yaml", "identitys: []\n");
  registry.set_static_file(path);
  auto bad = registry.poll_static_file();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find(path + ":1:1: unknown key 'identitys' in the identity file (did you mean "
                                "'identities'?)") == 0);
  tree.write("ids.yaml", "identities: {name: x}\n");
  CHECK(registry.poll_static_file().error().find(
            path + ":1:13: identities must be a list of {name, spiffe, selectors}") == 0);
  tree.write("ids.yaml", "identities:\n  - name: world\n");
  CHECK(registry.poll_static_file().error().find(path + ":2:11: 'world' is the built-in identity") == 0);
  tree.write("ids.yaml", "identities: []\n");
  CHECK(*registry.poll_static_file());
}
