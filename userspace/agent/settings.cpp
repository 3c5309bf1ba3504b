// The agent settings file. Unknown keys are errors (a typo must not silently fall back to a default
// that attaches somewhere else).
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "agent.h"

namespace riskgate::agent {

namespace {

class SettingsReader {
 public:
  explicit SettingsReader(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Node &node, const std::string &message)
  {
    const auto mark = node.Mark();
    errors_.push_back(fmt::format("{}:{}:{}: {}", file_, mark.line + 1, mark.column + 1, message));
  }

  // Checks that `map` is a mapping with only `allowed` keys.
  bool mapping(const YAML::Node &map, const std::string &where, const std::set<std::string> &allowed)
  {
    if (!map.IsMap()) {
      error(map, fmt::format("{} must be a mapping", where));
      return false;
    }
    for (const auto &entry : map) {
      const auto key = entry.first.as<std::string>();
      if (!allowed.count(key))
        error(entry.first,
              fmt::format("unknown key '{}' in {}", key, where.empty() ? "the settings" : where));
    }
    return true;
  }

  void string(const YAML::Node &map, const char *key, std::string &out)
  {
    const auto node = map[key];
    if (!node)
      return;
    if (!node.IsScalar())
      return error(node, fmt::format("{} must be a string", key));
    out = node.as<std::string>();
  }

  void number(const YAML::Node &map, const char *key, unsigned &out, unsigned min, unsigned max)
  {
    const auto node = map[key];
    if (!node)
      return;
    unsigned value = 0;
    if (!node.IsScalar() || !YAML::convert<unsigned>::decode(node, value) || value < min || value > max)
      return error(node, fmt::format("{} must be a whole number from {} to {}", key, min, max));
    out = value;
  }

  std::string file_;
  std::vector<std::string> errors_;
};

}  // namespace

Result<void> load_settings(const std::string &path, Options &options)
{
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException &e) {
    return make_error(fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YAML::Exception &e) {
    return make_error(fmt::format("{}: {}", path, e.what()));
  }
  if (root.IsNull())
    return {};
  SettingsReader r(path);
  if (r.mapping(root, "", {"node", "policyDir", "identityFile"})) {
    r.string(root, "policyDir", options.policy_dir);
    r.string(root, "identityFile", options.identity_file);
    if (const auto node = root["node"];
        node && r.mapping(node, "node", {"cgroup", "xdp", "pinRoot", "workers", "admin", "audit"})) {
      r.string(node, "cgroup", options.cgroup);
      r.string(node, "pinRoot", options.pin_root);
      if (const auto workers = node["workers"];
          workers && !(workers.IsScalar() && workers.as<std::string>() == "auto"))
        r.number(node, "workers", options.workers, 1, 256);
      if (const auto xdp = node["xdp"]) {
        if (!xdp.IsSequence()) {
          r.error(xdp, "xdp must be a list of interface names");
        } else {
          options.xdp_interfaces.clear();
          for (const auto &iface : xdp) options.xdp_interfaces.push_back(iface.as<std::string>());
        }
      }
      if (const auto admin = node["admin"]; admin && r.mapping(admin, "node.admin", {"metrics", "socket"})) {
        r.string(admin, "metrics", options.admin_metrics);
        r.string(admin, "socket", options.admin_socket);
      }
      if (const auto audit = node["audit"];
          audit && r.mapping(audit, "node.audit", {"path", "rotateMB", "keep"})) {
        r.string(audit, "path", options.audit_path);
        r.number(audit, "rotateMB", options.audit_rotate_mb, 1, 1 << 20);
        r.number(audit, "keep", options.audit_keep, 0, 1000);
      }
    }
  }
  if (!r.errors_.empty()) {
    std::string message;
    for (const auto &e : r.errors_) message += (message.empty() ? "" : "\n") + e;
    return make_error(message);
  }
  return {};
}

}  // namespace riskgate::agent
