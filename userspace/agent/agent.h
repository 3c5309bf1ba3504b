// The agent's lifecycle: configuration in, modules wired, signals handled.
#pragma once

#include <string>
#include <vector>

namespace riskgate::agent {

struct Options {
  std::string config_file;
  std::string listen;
  std::string upstream;
  unsigned workers = 0;  // 0 = one per core
  std::string policy_dir;
  std::string cgroup;  // empty = cgroup v2 root
  std::vector<std::string> xdp_interfaces;
  std::string pin_root = "/sys/fs/bpf/riskgate";
  bool no_kernel = false;
  bool uninstall = false;
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int run(const Options &options);

}  // namespace riskgate::agent
