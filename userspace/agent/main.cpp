// riskgated: the node agent. Parses the command line, then hands over to the agent (agent/agent.h).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "agent/agent.h"

int main(int argc, char **argv)
{
  riskgate::agent::Options opts;
  CLI::App app{"riskgated: per-request risk scoring proxy with in-kernel enforcement"};
  app.add_option("--config", opts.config_file, "agent settings file (YAML); without it the embedded default policy runs")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", opts.listen, "gateway listener HOST:PORT (quick start, no config file)");
  app.add_option("--upstream", opts.upstream, "upstream HOST:PORT the gateway forwards to");
  app.add_option("--workers", opts.workers, "worker threads, one io_uring each (default: one per core)")
      ->check(CLI::Range(1, 256));
  app.add_option("--policy-dir", opts.policy_dir, "directory of policy YAML files (hot-reloaded)");
  app.add_option("--cgroup", opts.cgroup,
                 "cgroup v2 directory the cgroup programs attach to (default: the cgroup v2 root, the whole node)");
  app.add_option("--xdp", opts.xdp_interfaces, "interface for the XDP gate (repeatable)");
  app.add_option("--pin-root", opts.pin_root, "bpffs directory for pinned maps and links")
      ->default_val(opts.pin_root);
  app.add_flag("--no-kernel", opts.no_kernel, "proxy only: load no BPF program (development)");
  app.add_flag("--uninstall", opts.uninstall, "detach every program and remove every pin, then exit");
  CLI11_PARSE(app, argc, argv);
  return riskgate::agent::run(opts);
}
