// The pods of this node, read from the Kubernetes API server with the agent's service account
// (in-cluster config: KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA, NODE_NAME from the
// downward API). Feeds WorkloadRegistry::set_kubernetes_pods: namespace + service account decide
// the identity, the pod uid finds its cgroups, its IPs become host prefixes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/result.h>

#include <riskgate/identity/registry.h>

namespace riskgate::identity {

struct KubernetesConfig {
  std::string host;
  std::uint16_t port = 443;
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string node_name;
  std::chrono::milliseconds timeout{5000};

  // From the environment of a pod; an error says what is missing (not running in a cluster).
  static Result<KubernetesConfig> in_cluster();
};

// GET /api/v1/pods?fieldSelector=spec.nodeName=<node>. The token file is read on every call
// (projected service-account tokens rotate).
Result<std::vector<KubernetesPod>> list_node_pods(const KubernetesConfig &config);

// A v1 PodList; pods that finished (Succeeded/Failed) are left out, their IPs may be reused.
Result<std::vector<KubernetesPod>> parse_pod_list(std::string_view json);

}  // namespace riskgate::identity
