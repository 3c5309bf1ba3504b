#include <riskgate/identity/kubernetes.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <riskgate/identity/https_client.h>

namespace riskgate::identity {
namespace {

std::string env(const char *name)
{
  const char *v = std::getenv(name);
  return v ? v : "";
}

std::string url_encode(std::string_view text)
{
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string string_at(const nlohmann::json &obj, const char *a, const char *b)
{
  auto outer = obj.find(a);
  if (outer == obj.end() || !outer->is_object())
    return "";
  auto inner = outer->find(b);
  return inner != outer->end() && inner->is_string() ? inner->get<std::string>() : "";
}

}  // namespace

Result<KubernetesConfig> KubernetesConfig::in_cluster()
{
  KubernetesConfig config;
  config.host = env("KUBERNETES_SERVICE_HOST");
  const std::string port = env("KUBERNETES_SERVICE_PORT");
  config.node_name = env("NODE_NAME");
  if (config.host.empty())
    return make_error("not in a Kubernetes cluster: KUBERNETES_SERVICE_HOST is not set");
  if (config.node_name.empty())
    return make_error("NODE_NAME is not set (DaemonSet env: valueFrom.fieldRef.fieldPath: spec.nodeName)");
  if (!port.empty()) {
    const int p = std::atoi(port.c_str());
    if (p < 1 || p > 65535)
      return make_error(fmt::format("KUBERNETES_SERVICE_PORT \"{}\" is not a port", port));
    config.port = static_cast<std::uint16_t>(p);
  }
  return config;
}

Result<std::vector<KubernetesPod>> parse_pod_list(std::string_view json)
{
  const auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return make_error("pod list is not a JSON object");
  auto items = doc.find("items");
  if (items == doc.end() || !(items->is_array() || items->is_null()))
    return make_error("pod list has no items array");
  std::vector<KubernetesPod> pods;
  if (items->is_null())
    return pods;
  for (const auto &item : *items) {
    if (!item.is_object())
      continue;
    const std::string phase = string_at(item, "status", "phase");
    if (phase == "Succeeded" || phase == "Failed")
      continue;
    KubernetesPod pod;
    pod.name = string_at(item, "metadata", "name");
    pod.namespace_name = string_at(item, "metadata", "namespace");
    pod.uid = string_at(item, "metadata", "uid");
    pod.service_account = string_at(item, "spec", "serviceAccountName");
    if (pod.service_account.empty())
      pod.service_account = "default";
    if (pod.uid.empty() || pod.namespace_name.empty())
      continue;
    // hostNetwork pods share the node's IP: never map it to one workload.
    const auto spec = item.find("spec");
    const bool host_network = spec != item.end() && spec->is_object() && spec->contains("hostNetwork") &&
                              (*spec)["hostNetwork"].is_boolean() && (*spec)["hostNetwork"].get<bool>();
    const auto status = item.find("status");
    if (!host_network && status != item.end() && status->is_object()) {
      if (auto ips = status->find("podIPs"); ips != status->end() && ips->is_array()) {
        for (const auto &ip : *ips)
          if (ip.is_object() && ip.contains("ip") && ip["ip"].is_string())
            pod.ips.push_back(ip["ip"].get<std::string>());
      } else if (auto ip = string_at(item, "status", "podIP"); !ip.empty()) {
        pod.ips.push_back(ip);
      }
    }
    pods.push_back(std::move(pod));
  }
  return pods;
}

Result<std::vector<KubernetesPod>> list_node_pods(const KubernetesConfig &config)
{
  std::ifstream token_file(config.token_file);
  std::stringstream token;
  token << token_file.rdbuf();
  if (!token_file)
    return make_error(fmt::format("read service-account token {}: cannot read", config.token_file));
  std::string bearer = token.str();
  while (!bearer.empty() && (bearer.back() == '\n' || bearer.back() == '\r' || bearer.back() == ' '))
    bearer.pop_back();

  HttpsRequest request;
  request.url.host = config.host;
  request.url.port = config.port;
  request.url.path = "/api/v1/pods?fieldSelector=" + url_encode("spec.nodeName=" + config.node_name);
  request.ca_file = config.ca_file;
  request.bearer_token = bearer;
  request.timeout = config.timeout;
  request.max_body_bytes = 64u << 20;  // a node holds a few hundred pods at most
  auto response = https_get(request);
  if (!response)
    return make_error("list pods: " + response.error());
  if (response->status != 200)
    return make_error(fmt::format(
        "list pods: HTTP {} from the API server (RBAC: the agent needs list on pods)", response->status));
  auto pods = parse_pod_list(response->body);
  if (!pods)
    return make_error("list pods: " + pods.error());
  return pods;
}

}  // namespace riskgate::identity
