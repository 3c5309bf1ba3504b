// The agent settings file, through the policy module's YAML reader. Unknown keys are errors (a typo
// must not silently fall back to a default that attaches somewhere else), and so are repeated keys.
#include <string>
#include <vector>

#include <riskgate/policy/yaml_reader.h>

#include "agent.h"

namespace riskgate::agent {

namespace {

void read_string(policy::YamlReader &yaml, const policy::Fields &fields, std::string_view key,
                 std::string &out)
{
  if (const auto node = fields.get(key))
    out = yaml.string(*node, key).value_or(out);
}

void read_count(policy::YamlReader &yaml, const policy::Fields &fields, std::string_view key, unsigned &out,
                int min, int max)
{
  if (const auto node = fields.get(key))
    out = static_cast<unsigned>(yaml.integer(*node, key, min, max).value_or(static_cast<int>(out)));
}

void read_node(policy::YamlReader &yaml, const YAML::Node &node, Options &options)
{
  const auto fields = yaml.fields(node, {"cgroup", "xdp", "pinRoot", "workers", "admin", "audit"}, "node");
  if (!fields)
    return;
  read_string(yaml, *fields, "cgroup", options.cgroup);
  read_string(yaml, *fields, "pinRoot", options.pin_root);
  if (const auto workers = fields->get("workers");
      workers && !(workers->IsScalar() && workers->Scalar() == "auto"))
    read_count(yaml, *fields, "workers", options.workers, 1, 256);
  if (const auto xdp = fields->get("xdp"))
    options.xdp_interfaces = yaml.strings(*xdp, "xdp");
  if (const auto admin = fields->get("admin"))
    if (const auto af = yaml.fields(*admin, {"metrics", "socket"}, "node.admin")) {
      read_string(yaml, *af, "metrics", options.admin_metrics);
      read_string(yaml, *af, "socket", options.admin_socket);
    }
  if (const auto audit = fields->get("audit"))
    if (const auto af = yaml.fields(*audit, {"path", "rotateMB", "keep"}, "node.audit")) {
      read_string(yaml, *af, "path", options.audit_path);
      read_count(yaml, *af, "rotateMB", options.audit_rotate_mb, 1, 1 << 20);
      read_count(yaml, *af, "keep", options.audit_keep, 0, 1000);
    }
}

}  // namespace

Result<void> load_settings(const std::string &path, Options &options)
{
  policy::YamlReader yaml;
  const auto text = yaml.read_text(path);
  const auto documents = text ? yaml.documents(*text, path) : std::vector<YAML::Node>{};
  if (documents.size() > 1)
    yaml.error(documents[1], "a settings file has one document");
  if (!documents.empty())
    if (const auto fields =
            yaml.fields(documents.front(), {"node", "policyDir", "identityFile"}, "the settings")) {
      read_string(yaml, *fields, "policyDir", options.policy_dir);
      read_string(yaml, *fields, "identityFile", options.identity_file);
      if (const auto node = fields->get("node"))
        read_node(yaml, *node, options);
    }
  if (!yaml.ok())
    return make_error(policy::to_string(yaml.diagnostics()));
  return {};
}

}  // namespace riskgate::agent
