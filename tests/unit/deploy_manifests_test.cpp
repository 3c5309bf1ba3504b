// The deployment files (deploy/) as an operator's cluster and host would read them: every Kubernetes
// manifest and overlay parsed and held to what a BPF DaemonSet of this kind must have, the systemd
// unit's hardening, the two-stage Dockerfile, and deploy/install.sh run against a temporary root.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <riskgate/admin/admin.h>
#include <riskgate/admin/metrics.h>
#include <riskgate/policy/policy.h>
#include <riskgate/risk/engine.h>

#include "agent/agent.h"
#include "support/capture.h"

namespace fs = std::filesystem;
namespace test = riskgate::test;

namespace {

const fs::path source_dir = RG_SOURCE_DIR;
const fs::path k8s_dir = source_dir / "deploy/kubernetes";

// A file the test expects; a missing one fails the test here, by name.
std::string read_text(const fs::path &path)
{
  REQUIRE_MESSAGE(fs::is_regular_file(path), "cannot read ", path.string());
  return test::read_text(path);
}

std::vector<YAML::Node> load_documents(const fs::path &path)
{
  try {
    return YAML::LoadAllFromFile(path.string());
  } catch (const YAML::Exception &e) {
    FAIL(path.string(), ": ", e.what());
  }
  return {};
}

// The first document of `kind` in a manifest file.
YAML::Node find_kind(const fs::path &path, const std::string &kind)
{
  for (const auto &doc : load_documents(path))
    if (doc["kind"] && doc["kind"].as<std::string>() == kind)
      return doc;
  FAIL("no ", kind, " in ", path.string());
  return {};
}

YAML::Node find_named(const YAML::Node &sequence, const std::string &name)
{
  for (const auto &item : sequence)
    if (item["name"] && item["name"].as<std::string>() == name)
      return item;
  FAIL("no entry named ", name);
  return {};
}

std::set<std::string> string_set(const YAML::Node &sequence)
{
  std::set<std::string> out;
  for (const auto &item : sequence) out.insert(item.as<std::string>());
  return out;
}

// Structural equality of two YAML trees (yaml-cpp's operator== compares identity, not content).
bool same_tree(const YAML::Node &a, const YAML::Node &b)
{
  if (a.Type() != b.Type())
    return false;
  switch (a.Type()) {
    case YAML::NodeType::Scalar: return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
      if (a.size() != b.size())
        return false;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (!same_tree(a[i], b[i]))
          return false;
      return true;
    case YAML::NodeType::Map:
      if (a.size() != b.size())
        return false;
      for (const auto &entry : a) {
        const auto key = entry.first.as<std::string>();
        if (!b[key] || !same_tree(entry.second, b[key]))
          return false;
      }
      return true;
    default: return true;
  }
}

const std::set<std::string> bpf_capabilities = {"BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON", "SYS_RESOURCE"};

YAML::Node daemonset()
{
  return find_kind(k8s_dir / "base/daemonset.yaml", "DaemonSet");
}

YAML::Node agent_container()
{
  return find_named(daemonset()["spec"]["template"]["spec"]["containers"], "riskgated");
}

YAML::Node agent_settings()
{
  return YAML::LoadFile((k8s_dir / "base/riskgate.yaml").string());
}

// The port of a "HOST:PORT" setting.
int port_of(const std::string &address)
{
  return std::stoi(address.substr(address.rfind(':') + 1));
}

}  // namespace

TEST_CASE("every YAML file under deploy/kubernetes parses, and every resource a kustomization names exists")
{
  int files = 0;
  for (const auto &entry : fs::recursive_directory_iterator(k8s_dir)) {
    if (entry.path().extension() != ".yaml")
      continue;
    ++files;
    const auto docs = load_documents(entry.path());
    CHECK_MESSAGE(!docs.empty(), entry.path().string(), " has no document");
    if (entry.path().filename() != "kustomization.yaml")
      continue;
    const auto kustomization = docs.front();
    CHECK(kustomization["kind"].as<std::string>() == "Kustomization");
    for (const auto &resource : kustomization["resources"]) {
      const auto target = entry.path().parent_path() / resource.as<std::string>();
      CHECK_MESSAGE(fs::exists(target), entry.path().string(), " names missing ", target.string());
      if (fs::is_regular_file(target))
        for (const auto &doc : load_documents(target)) {
          CHECK_MESSAGE(doc["apiVersion"], target.string(), ": a document without apiVersion");
          CHECK_MESSAGE(doc["metadata"]["name"], target.string(), ": a document without metadata.name");
        }
    }
  }
  // base (kustomization, namespace, rbac, daemonset, service, riskgate.yaml, policy) + 2 overlays + 1 policy copy
  CHECK(files >= 10);
}

TEST_CASE(
    "the DaemonSet runs one unprivileged agent per node, on the host network, with exactly the BPF "
    "capabilities")
{
  const auto ds = daemonset();
  const auto pod = ds["spec"]["template"]["spec"];
  CHECK(ds["apiVersion"].as<std::string>() == "apps/v1");
  CHECK(pod["hostNetwork"].as<bool>());
  const bool host_pid = pod["hostPID"] && pod["hostPID"].as<bool>();
  CHECK_FALSE(host_pid);
  CHECK(pod["tolerations"][0]["operator"].as<std::string>() == "Exists");

  const auto agent = agent_container();
  const auto security = agent["securityContext"];
  CHECK_FALSE(security["privileged"].as<bool>());
  CHECK(string_set(security["capabilities"]["add"]) == bpf_capabilities);
  CHECK(string_set(security["capabilities"]["drop"]) == std::set<std::string>{"ALL"});
  // The API server rejects allowPrivilegeEscalation=false together with CAP_SYS_ADMIN.
  CHECK_FALSE(security["allowPrivilegeEscalation"]);
  CHECK(security["readOnlyRootFilesystem"].as<bool>());

  const auto resources = agent["resources"];
  CHECK(resources["requests"]["cpu"]);
  CHECK(resources["requests"]["memory"]);
  CHECK(resources["limits"]["memory"]);

  std::vector<std::string> args;
  for (const auto &arg : agent["args"]) args.push_back(arg.as<std::string>());
  CHECK(args == std::vector<std::string>{"--config", "/etc/riskgate/riskgate.yaml"});

  const auto node_name = find_named(agent["env"], "NODE_NAME");
  CHECK(node_name["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>() == "spec.nodeName");
}

TEST_CASE(
    "bpffs reaches the host through Bidirectional propagation, only in a privileged mount-only init "
    "container")
{
  const auto pod = daemonset()["spec"]["template"]["spec"];
  std::map<std::string, std::string> host_paths;
  for (const auto &volume : pod["volumes"])
    if (volume["hostPath"])
      host_paths[volume["name"].as<std::string>()] = volume["hostPath"]["path"].as<std::string>();
  CHECK(host_paths["bpffs"] == "/sys/fs/bpf");
  CHECK(host_paths["cgroup"] == "/sys/fs/cgroup");
  CHECK(host_paths["run"] == "/run/riskgate");
  CHECK(host_paths["log"] == "/var/log/riskgate");

  const auto init = find_named(pod["initContainers"], "mount-bpffs");
  CHECK(init["securityContext"]["privileged"].as<bool>());
  CHECK(init["command"][2].as<std::string>() == "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
  const auto init_mount = find_named(init["volumeMounts"], "bpffs");
  CHECK(init_mount["mountPath"].as<std::string>() == "/sys/fs/bpf");
  CHECK(init_mount["mountPropagation"].as<std::string>() == "Bidirectional");

  const auto agent = agent_container();
  const auto bpffs = find_named(agent["volumeMounts"], "bpffs");
  CHECK(bpffs["mountPath"].as<std::string>() == "/sys/fs/bpf");
  CHECK(bpffs["mountPropagation"].as<std::string>() == "HostToContainer");
  CHECK(find_named(agent["volumeMounts"], "cgroup")["mountPath"].as<std::string>() == "/sys/fs/cgroup");
  CHECK(find_named(agent["volumeMounts"], "run")["mountPath"].as<std::string>() == "/run/riskgate");
  CHECK(find_named(agent["volumeMounts"], "log")["mountPath"].as<std::string>() == "/var/log/riskgate");

  // The API server's own rule: Bidirectional propagation only in privileged containers.
  for (const char *group : {"initContainers", "containers"})
    for (const auto &container : pod[group]) {
      const bool privileged =
          container["securityContext"]["privileged"] && container["securityContext"]["privileged"].as<bool>();
      for (const auto &mount : container["volumeMounts"])
        if (mount["mountPropagation"] && mount["mountPropagation"].as<std::string>() == "Bidirectional")
          CHECK_MESSAGE(privileged, container["name"].as<std::string>(), " uses Bidirectional unprivileged");
    }
}

TEST_CASE("probes, metrics Service and scrape annotations all point at the agent's admin port")
{
  const auto settings = agent_settings();
  const int admin_port = port_of(settings["node"]["admin"]["metrics"].as<std::string>());
  CHECK(admin_port == 9464);

  const auto agent = agent_container();
  const auto live = agent["livenessProbe"]["httpGet"];
  const auto ready = agent["readinessProbe"]["httpGet"];
  CHECK(live["path"].as<std::string>() == "/healthz");
  CHECK(ready["path"].as<std::string>() == "/readyz");
  for (const auto &probe : {live, ready}) {
    CHECK(probe["port"].as<int>() == admin_port);
    CHECK(probe["host"].as<std::string>() == "127.0.0.1");
  }
  const auto admin = find_named(agent["ports"], "admin");
  CHECK(admin["containerPort"].as<int>() == admin_port);

  const auto template_meta = daemonset()["spec"]["template"]["metadata"];
  const auto service = find_kind(k8s_dir / "base/service.yaml", "Service");
  for (const auto &annotations : {template_meta["annotations"], service["metadata"]["annotations"]}) {
    CHECK(annotations["prometheus.io/scrape"].as<std::string>() == "true");
    CHECK(annotations["prometheus.io/port"].as<int>() == admin_port);
    CHECK(annotations["prometheus.io/path"].as<std::string>() == "/metrics");
  }
  CHECK(service["spec"]["clusterIP"].as<std::string>() == "None");
  CHECK(service["spec"]["ports"][0]["targetPort"].as<std::string>() == "admin");
  for (const auto &selector : service["spec"]["selector"]) {
    const auto key = selector.first.as<std::string>();
    CHECK_MESSAGE(template_meta["labels"][key].as<std::string>() == selector.second.as<std::string>(),
                  "Service selects ", key, " which the pods do not carry");
  }
}

namespace {

// The status line of a plain HTTP/1.1 GET to 127.0.0.1:port, as the kubelet's httpGet probe sends it.
std::string http_status(std::uint16_t port, const std::string &path)
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof addr) == 0);
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.32\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[1024];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  return response.substr(0, response.find("\r\n"));
}

}  // namespace

TEST_CASE("the admin server answers the DaemonSet's probe paths: liveness always, readiness only when ready")
{
  const auto agent = agent_container();
  const auto live = agent["livenessProbe"]["httpGet"]["path"].as<std::string>();
  const auto ready = agent["readinessProbe"]["httpGet"]["path"].as<std::string>();

  riskgate::metrics::Registry registry;
  std::atomic<bool> is_ready{false};
  auto server = riskgate::admin::HttpServer::start("127.0.0.1:0", registry, [&is_ready]() -> std::string {
    return is_ready ? std::string() : std::string("starting: policy not loaded");
  });
  REQUIRE_MESSAGE(server.ok(), (server.ok() ? std::string() : server.error()));
  const auto port = (*server)->port();

  CHECK(http_status(port, live) == "HTTP/1.1 200 OK");
  CHECK(http_status(port, ready).starts_with("HTTP/1.1 503"));
  is_ready = true;
  CHECK(http_status(port, ready) == "HTTP/1.1 200 OK");
  CHECK(http_status(port, "/metrics") == "HTTP/1.1 200 OK");
}

TEST_CASE("RBAC grants the agent's ServiceAccount get/list/watch on pods and nothing else")
{
  const auto rbac = k8s_dir / "base/rbac.yaml";
  const auto account = find_kind(rbac, "ServiceAccount");
  const auto role = find_kind(rbac, "ClusterRole");
  const auto binding = find_kind(rbac, "ClusterRoleBinding");
  CHECK(daemonset()["spec"]["template"]["spec"]["serviceAccountName"].as<std::string>() ==
        account["metadata"]["name"].as<std::string>());

  REQUIRE(role["rules"].size() == 1);
  const auto rule = role["rules"][0];
  CHECK(string_set(rule["apiGroups"]) == std::set<std::string>{""});
  CHECK(string_set(rule["resources"]) == std::set<std::string>{"pods"});
  CHECK(string_set(rule["verbs"]) == std::set<std::string>{"get", "list", "watch"});
  CHECK_FALSE(rule["resourceNames"]);

  const auto kustomization = YAML::LoadFile((k8s_dir / "base/kustomization.yaml").string());
  CHECK(binding["roleRef"]["name"].as<std::string>() == role["metadata"]["name"].as<std::string>());
  CHECK(binding["subjects"][0]["name"].as<std::string>() == account["metadata"]["name"].as<std::string>());
  CHECK(binding["subjects"][0]["namespace"].as<std::string>() ==
        kustomization["namespace"].as<std::string>());
}

TEST_CASE("policies come from a ConfigMap mounted as a directory under a stable name, so edits hot-reload")
{
  const auto kustomization = YAML::LoadFile((k8s_dir / "base/kustomization.yaml").string());
  const auto policies = find_named(kustomization["configMapGenerator"], "riskgate-policies");
  CHECK(policies["options"]["disableNameSuffixHash"].as<bool>());

  const auto pod = daemonset()["spec"]["template"]["spec"];
  CHECK(find_named(pod["volumes"], "policies")["configMap"]["name"].as<std::string>() == "riskgate-policies");
  const auto mount = find_named(agent_container()["volumeMounts"], "policies");
  CHECK(mount["mountPath"].as<std::string>() == agent_settings()["policyDir"].as<std::string>());
  CHECK_FALSE(mount["subPath"]);  // a subPath mount never sees a ConfigMap update
}

TEST_CASE("the observe overlay switches the policy to observe and changes nothing else")
{
  auto policy_of = [](const fs::path &kustomization_dir, const std::string &file) {
    return find_kind(kustomization_dir / file, "RiskPolicy");
  };
  auto base = policy_of(k8s_dir / "base", "policies/risk-policy.yaml");
  auto observe = policy_of(k8s_dir / "overlays/observe", "risk-policy.yaml");
  CHECK(base["spec"]["mode"].as<std::string>() == "enforce");
  CHECK(observe["spec"]["mode"].as<std::string>() == "observe");
  observe["spec"]["mode"] = "enforce";
  CHECK_MESSAGE(same_tree(base, observe), "overlays/observe/risk-policy.yaml drifted from the base policy");

  const auto overlay = YAML::LoadFile((k8s_dir / "overlays/observe/kustomization.yaml").string());
  CHECK(string_set(overlay["resources"]) == std::set<std::string>{"../../base"});
  const auto generator = find_named(overlay["configMapGenerator"], "riskgate-policies");
  CHECK(generator["behavior"].as<std::string>() == "merge");
  CHECK(generator["options"]["disableNameSuffixHash"].as<bool>());
  // Same file name as in the base, so the merge replaces the base policy instead of adding a second.
  CHECK(string_set(generator["files"]) == std::set<std::string>{"risk-policy.yaml"});

  const auto enforce = YAML::LoadFile((k8s_dir / "overlays/enforce/kustomization.yaml").string());
  CHECK(string_set(enforce["resources"]) == std::set<std::string>{"../../base"});
  CHECK_FALSE(enforce["configMapGenerator"]);
}

namespace {

// Loads through the real policy loader (what riskgated does on start and reload); every diagnostic
// is reported with its file:line:column.
riskgate::policy::PolicySet load_policy(const fs::path &path)
{
  auto loaded = riskgate::policy::load_path(path.string());
  std::string diagnostics;
  for (const auto &diagnostic : loaded.diagnostics)
    diagnostics += riskgate::policy::to_string(diagnostic) + "\n";
  REQUIRE_MESSAGE(loaded.ok(), diagnostics);
  return *loaded.set;
}

}  // namespace

TEST_CASE("the cluster policy and its observe copy load through riskgated's policy loader")
{
  using riskgate::policy::Mode;
  const auto base = load_policy(k8s_dir / "base/policies");
  REQUIRE(base.risk_policies.size() == 1);
  CHECK(base.risk_policies[0].mode == Mode::enforce);
  const auto observe = load_policy(k8s_dir / "overlays/observe/risk-policy.yaml");
  REQUIRE(observe.risk_policies.size() == 1);
  CHECK(observe.risk_policies[0].mode == Mode::observe);
}

namespace {

// key -> every value it is given in the unit, in order ("Key=" lines may repeat).
std::map<std::string, std::vector<std::string>> parse_unit(const fs::path &path)
{
  std::map<std::string, std::vector<std::string>> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';' || line[0] == '[')
      continue;
    const auto eq = line.find('=');
    REQUIRE_MESSAGE(eq != std::string::npos, path.string(), ": not a key=value line: ", line);
    out[line.substr(0, eq)].push_back(line.substr(eq + 1));
  }
  return out;
}

std::set<std::string> words(const std::string &text)
{
  std::istringstream in(text);
  std::set<std::string> out;
  for (std::string word; in >> word;) out.insert(word);
  return out;
}

}  // namespace

TEST_CASE("riskgated.service: SIGHUP reload, the BPF capability set, and only the agent's paths writable")
{
  auto unit = parse_unit(source_dir / "deploy/systemd/riskgated.service");
  auto one = [&](const std::string &key) {
    REQUIRE_MESSAGE(unit[key].size() == 1, key, " set ", unit[key].size(), " times");
    return unit[key].front();
  };
  CHECK(one("ExecStart") == "/usr/local/sbin/riskgated --config /etc/riskgate/riskgate.yaml");
  CHECK(one("ExecReload") == "/bin/kill -HUP $MAINPID");
  CHECK(one("Restart") == "on-failure");
  CHECK(one("KillMode") == "mixed");
  CHECK(one("LimitMEMLOCK") == "infinity");
  CHECK(one("ProtectSystem") == "strict");
  CHECK(one("ProtectHome") == "yes");
  CHECK(one("NoNewPrivileges") == "yes");
  CHECK(words(one("ReadWritePaths")) ==
        std::set<std::string>{"/sys/fs/bpf", "/run/riskgate", "/var/log/riskgate"});

  CHECK(one("UMask") == "0027");
  // A deny-list; the groups holding bpf(), perf_event_open, mount and setrlimit must stay allowed.
  const auto filter = one("SystemCallFilter");
  REQUIRE(filter.starts_with("~"));
  const std::set<std::string> needed = {"@privileged", "@debug", "@mount", "@resources"};
  for (const auto &group : words(filter.substr(1)))
    CHECK_MESSAGE(needed.count(group) == 0, "SystemCallFilter denies ", group, ", which riskgated needs");

  std::set<std::string> caps;
  for (const auto &cap : bpf_capabilities) caps.insert("CAP_" + cap);
  CHECK(words(one("CapabilityBoundingSet")) == caps);
  CHECK(words(one("AmbientCapabilities")) == caps);

  // The sample settings the unit starts with keep their writable state inside ReadWritePaths.
  const auto settings = YAML::LoadFile((source_dir / "deploy/systemd/riskgate.yaml").string());
  CHECK(settings["node"]["pinRoot"].as<std::string>().starts_with("/sys/fs/bpf/"));
  CHECK(settings["node"]["admin"]["socket"].as<std::string>().starts_with("/run/riskgate/"));
  CHECK(settings["node"]["audit"]["path"].as<std::string>().starts_with("/var/log/riskgate/"));
  CHECK(settings["node"]["admin"]["metrics"].as<std::string>() == "127.0.0.1:9464");
  CHECK(settings["policyDir"].as<std::string>() == "/etc/riskgate/policies");
}

TEST_CASE("both sample agent settings files load through riskgated's settings reader")
{
  riskgate::agent::Options cluster;
  const auto cluster_loaded =
      riskgate::agent::load_settings((k8s_dir / "base/riskgate.yaml").string(), cluster);
  REQUIRE_MESSAGE(cluster_loaded.ok(), (cluster_loaded.ok() ? std::string() : cluster_loaded.error()));
  CHECK(cluster.cgroup.empty());  // the cgroup v2 root from /proc/mounts: the host's, mounted over the pod's
  CHECK(cluster.xdp_interfaces.empty());
  CHECK(cluster.admin_metrics == "0.0.0.0:9464");
  CHECK(cluster.admin_socket == "/run/riskgate/admin.sock");
  CHECK(cluster.audit_path == "/var/log/riskgate/decisions.jsonl");
  CHECK(cluster.pin_root == "/sys/fs/bpf/riskgate");
  CHECK(cluster.policy_dir == "/etc/riskgate/policies");

  riskgate::agent::Options host;
  const auto host_loaded =
      riskgate::agent::load_settings((source_dir / "deploy/systemd/riskgate.yaml").string(), host);
  REQUIRE_MESSAGE(host_loaded.ok(), (host_loaded.ok() ? std::string() : host_loaded.error()));
  CHECK(host.admin_metrics == "127.0.0.1:9464");
  CHECK(host.audit_rotate_mb == 100);
  CHECK(host.audit_keep == 10);
  CHECK(host.policy_dir == "/etc/riskgate/policies");
}

TEST_CASE("the Dockerfile builds on Debian 12 and ships a slim runtime stage with the binaries only")
{
  std::istringstream in(read_text(source_dir / "deploy/Dockerfile"));
  std::vector<std::string> from;
  bool copies_from_build = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("FROM "))
      from.push_back(line);
    if (line.starts_with("COPY --from=build "))
      copies_from_build = true;
  }
  REQUIRE(from.size() == 2);
  CHECK(from[0] == "FROM debian:12 AS build");
  CHECK(from[1] == "FROM debian:12-slim");
  CHECK(copies_from_build);
  const auto text = read_text(source_dir / "deploy/Dockerfile");
  CHECK(text.find("scripts/install-deps") != std::string::npos);
  CHECK(text.find("ldd ") != std::string::npos);
  CHECK(fs::exists(source_dir / ".dockerignore"));
}

namespace {

struct TempDir {
  fs::path path;
  TempDir()
  {
    std::string pattern = (fs::temp_directory_path() / "riskgate-deploy-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir()
  {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
};

// deploy/install.sh with these arguments: its exit code and everything it printed.
test::Captured run_install(const std::string &args)
{
  return test::capture((source_dir / "deploy/install.sh").string() + " " + args);
}

unsigned mode_of(const fs::path &path)
{
  struct stat st {};
  REQUIRE_MESSAGE(::stat(path.c_str(), &st) == 0, "missing ", path.string());
  return st.st_mode & 07777;
}

// A build directory with stand-in executables: the script copies them, it never runs them.
void fake_build(const fs::path &dir)
{
  fs::create_directories(dir);
  for (const char *name : {"riskgated", "riskgatectl"}) {
    std::ofstream(dir / name) << "#!/bin/sh\necho " << name << "\n";
    fs::permissions(dir / name, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  }
}

}  // namespace

TEST_CASE("install.sh --dry-run lists what it would place and writes nothing")
{
  TempDir tmp;
  fake_build(tmp.path / "build");
  const auto root = tmp.path / "root";
  const auto run =
      run_install("--dry-run --build-dir " + (tmp.path / "build").string() + " --prefix " + root.string());
  INFO(run.out);
  CHECK(run.code == 0);
  for (const char *file :
       {"/usr/local/sbin/riskgated", "/usr/local/sbin/riskgatectl", "/etc/systemd/system/riskgated.service",
        "/etc/riskgate/riskgate.yaml", "/etc/riskgate/policies/default.yaml"})
    CHECK(run.out.find("would install: " + root.string() + file + " ") != std::string::npos);
  CHECK(run.out.find("would run on the host: systemctl enable riskgated.service") != std::string::npos);
  CHECK_FALSE(fs::exists(root));
}

TEST_CASE(
    "install.sh --prefix stages the binaries, unit, settings and policy, keeps an operator's edits, and "
    "uninstalls")
{
  TempDir tmp;
  fake_build(tmp.path / "build");
  const auto root = tmp.path / "root";
  const auto args = "--build-dir " + (tmp.path / "build").string() + " --prefix " + root.string();

  auto first = run_install(args + " --observe");
  INFO(first.out);
  REQUIRE(first.code == 0);
  CHECK(mode_of(root / "usr/local/sbin/riskgated") == 0755);
  CHECK(mode_of(root / "usr/local/sbin/riskgatectl") == 0755);
  CHECK(mode_of(root / "etc/systemd/system/riskgated.service") == 0644);
  CHECK(read_text(root / "etc/systemd/system/riskgated.service") ==
        read_text(source_dir / "deploy/systemd/riskgated.service"));
  CHECK(read_text(root / "etc/riskgate/riskgate.yaml") ==
        read_text(source_dir / "deploy/systemd/riskgate.yaml"));
  const auto installed = load_policy(root / "etc/riskgate/policies");
  REQUIRE(installed.risk_policies.size() == 1);
  CHECK(installed.risk_policies[0].mode == riskgate::policy::Mode::observe);
  CHECK(first.out.find("nothing on this host was changed") != std::string::npos);

  // Re-running over a new build is the upgrade: binaries replaced, settings and policies kept.
  std::ofstream(root / "etc/riskgate/riskgate.yaml", std::ios::app) << "# edited by the operator\n";
  std::ofstream(tmp.path / "build/riskgated") << "#!/bin/sh\necho new build\n";
  auto upgrade = run_install(args);
  INFO(upgrade.out);
  REQUIRE(upgrade.code == 0);
  CHECK(read_text(root / "usr/local/sbin/riskgated") == "#!/bin/sh\necho new build\n");
  CHECK(read_text(root / "etc/riskgate/riskgate.yaml").ends_with("# edited by the operator\n"));
  CHECK(find_kind(root / "etc/riskgate/policies/default.yaml", "RiskPolicy")["spec"]["mode"]
            .as<std::string>() == "observe");

  auto removed = run_install("--uninstall --prefix " + root.string());
  INFO(removed.out);
  REQUIRE(removed.code == 0);
  CHECK(removed.out.find("would run on the host: " + root.string() +
                         "/usr/local/sbin/riskgated --uninstall") != std::string::npos);
  CHECK_FALSE(fs::exists(root / "usr/local/sbin/riskgated"));
  CHECK_FALSE(fs::exists(root / "etc/systemd/system/riskgated.service"));
  CHECK(fs::exists(root / "etc/riskgate/riskgate.yaml"));
}

TEST_CASE("install.sh refuses unknown options and a build directory without binaries")
{
  TempDir tmp;
  auto bad_option = run_install("--prefix " + tmp.path.string() + " --frobnicate");
  CHECK(bad_option.code != 0);
  CHECK(bad_option.out.find("unknown option: --frobnicate") != std::string::npos);

  auto no_build =
      run_install("--build-dir " + (tmp.path / "empty").string() + " --prefix " + tmp.path.string());
  CHECK(no_build.code != 0);
  CHECK(no_build.out.find("riskgated not found: build first") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path / "usr"));
}

TEST_CASE("the Vagrant lab has two service nodes and a client; its node policy loads beside the default")
{
  const auto vagrantfile = read_text(source_dir / "vagrant/Vagrantfile");
  for (const char *vm : {"\"node1\"", "\"node2\"", "\"client\""})
    CHECK_MESSAGE(vagrantfile.find(vm) != std::string::npos, "Vagrantfile defines no VM ", vm);
  CHECK(vagrantfile.find("private_network") != std::string::npos);
  const auto provision = read_text(source_dir / "vagrant/provision.sh");
  CHECK(provision.find("/riskgate/deploy/install.sh --build-dir") != std::string::npos);
  CHECK(provision.find("xdp: [$iface]") != std::string::npos);

  // What a node's policy directory holds after provisioning, with provision.sh's substitutions.
  TempDir tmp;
  fs::copy_file(source_dir / "policies/default.yaml", tmp.path / "default.yaml");
  auto lab = read_text(source_dir / "vagrant/lab-policy.yaml");
  for (const auto &[placeholder, value] :
       {std::pair{"@LAB_IP@", "192.168.56.11"}, {"@CLIENT_IP@", "192.168.56.20"}})
    for (auto at = lab.find(placeholder); at != std::string::npos; at = lab.find(placeholder))
      lab.replace(at, std::string(placeholder).size(), value);
  std::ofstream(tmp.path / "lab.yaml") << lab;
  const auto set = load_policy(tmp.path);
  REQUIRE(set.identities.size() == 1);
  CHECK(set.identities[0].name == "lab-client");
  REQUIRE(set.identities[0].selectors.size() == 1);
  CHECK(set.identities[0].selectors[0].cidr == "192.168.56.20/32");
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0].listen == "192.168.56.11:8080");
  CHECK(set.services[0].upstream == "127.0.0.1:9000");
}

namespace {

// What the kubelet does to a directory-mounted ConfigMap (its AtomicWriter): the payload goes into a
// fresh "..<timestamp>" directory, a "..data_tmp" symlink to it is renamed over "..data", and the
// visible files are symlinks "name -> ..data/name" that an update to existing keys never touches.
void configmap_write(const fs::path &volume, const std::string &stamp, const std::string &file,
                     const std::string &text)
{
  const auto payload = volume / ("..2026_11_29_14_00_0" + stamp);
  fs::create_directory(payload);
  std::ofstream(payload / file) << text;
  const auto old_payload = fs::exists(volume / "..data") ? fs::read_symlink(volume / "..data") : fs::path();
  fs::create_symlink(payload.filename(), volume / "..data_tmp");
  fs::rename(volume / "..data_tmp", volume / "..data");
  if (!fs::is_symlink(volume / file))
    fs::create_symlink(fs::path("..data") / file, volume / file);
  if (!old_payload.empty())
    fs::remove_all(volume / old_payload);
}

}  // namespace

TEST_CASE("a ConfigMap update (the kubelet's ..data symlink swap) reloads the policy in a running agent")
{
  TempDir volume;
  const auto policy = read_text(k8s_dir / "base/policies/risk-policy.yaml");
  configmap_write(volume.path, "1", "risk-policy.yaml", policy);
  auto loaded = riskgate::policy::load_path(volume.path.string());
  REQUIRE(loaded.ok());
  riskgate::risk::Engine engine(*loaded.set);
  riskgate::risk::PolicyWatcher watcher(engine, volume.path.string());
  REQUIRE(watcher.start().ok());
  const auto before = engine.policy_version();

  auto observe = policy;
  observe.replace(observe.find("mode: enforce"), 13, "mode: observe");
  configmap_write(volume.path, "2", "risk-policy.yaml", observe);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (engine.policy_version() == before && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_MESSAGE(engine.policy_version() != before, "the ..data swap did not reload the policy");
  CHECK(riskgate::policy::load_path(volume.path.string()).set->risk_policies[0].mode ==
        riskgate::policy::Mode::observe);
}
