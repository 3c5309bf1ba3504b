// The agent's lifecycle: configuration in, modules wired, signals handled.
#pragma once

#include <string>
#include <vector>

#include <riskgate/common/paths.h>
#include <riskgate/common/result.h>

namespace riskgate::agent {

struct Options {
  std::string config_file;
  std::string listen;
  std::string upstream;
  unsigned workers = 0;       // 0 = one per core
  std::string policy_dir;     // empty = the embedded default policy
  std::string identity_file;  // static identities (YAML), reloaded on change; empty = none
  std::string cgroup;         // empty = cgroup v2 root
  std::vector<std::string> xdp_interfaces;
  std::string pin_root = paths::kPinRoot;
  std::string admin_metrics = paths::kMetricsListen;  // "" or "off": no admin HTTP port
  std::string admin_socket = paths::kAdminSocket;
  std::string audit_path = paths::kAuditLog;
  unsigned audit_rotate_mb = 100;
  unsigned audit_keep = 10;
  bool no_kernel = false;
  bool uninstall = false;
};

// Reads the agent settings file (docs/operations.md "Agent settings") into
// `options`, for every key the file sets. Errors name file:line:column; all of them are reported.
Result<void> load_settings(const std::string &path, Options &options);

// Runs until SIGTERM/SIGINT; returns the process exit code.
int run(const Options &options);

}  // namespace riskgate::agent
