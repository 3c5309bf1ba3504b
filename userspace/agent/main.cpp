// riskgated: the node agent. Settings come from defaults, then the --config file, then the command
// line (a flag given wins over the file); then the agent runs (agent/agent.h).
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <riskgate/common/paths.h>

#include "agent.h"

int main(int argc, char **argv)
{
  riskgate::agent::Options cli;
  CLI::App app{"riskgated: per-request risk scoring proxy with in-kernel enforcement"};
  app.add_option("--config", cli.config_file,
                 "agent settings file (YAML); without it the embedded default policy runs")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", cli.listen, "gateway listener HOST:PORT (quick start, no config file)");
  app.add_option("--upstream", cli.upstream, "upstream HOST:PORT the gateway forwards to");
  app.add_option("--workers", cli.workers, "worker threads, one io_uring each (default: one per core)")
      ->check(CLI::Range(1, 256));
  app.add_option("--policy-dir", cli.policy_dir,
                 "policy directory or file (YAML, hot-reloaded; default: the embedded default policy)");
  app.add_option("--identity-file", cli.identity_file,
                 "static workload identities (YAML, `identities:` list; reloaded on change)");
  app.add_option(
      "--cgroup", cli.cgroup,
      "cgroup v2 directory the cgroup programs attach to (default: the cgroup v2 root, the whole node)");
  app.add_option("--xdp", cli.xdp_interfaces, "interface for the XDP gate (repeatable)");
  app.add_option("--pin-root", cli.pin_root, "bpffs directory for pinned maps and links")
      ->default_val(cli.pin_root);
  app.add_option("--admin-metrics", cli.admin_metrics,
                 "admin HTTP HOST:PORT for /metrics and /healthz (off: none)")
      ->default_val(cli.admin_metrics);
  app.add_option("--admin-socket", cli.admin_socket, "unix socket for riskgatectl (mode 0600)")
      ->default_val(cli.admin_socket);
  app.add_option("--audit-log", cli.audit_path, "hash-chained decision log (JSON lines)")
      ->default_val(cli.audit_path);
  app.add_flag("--no-kernel", cli.no_kernel, "proxy only: load no BPF program (development)");
  app.add_flag("--uninstall", cli.uninstall, "detach every program and remove every pin, then exit");
  CLI11_PARSE(app, argc, argv);

  riskgate::agent::Options options;
  if (!cli.config_file.empty()) {
    options.config_file = cli.config_file;
    options.policy_dir = riskgate::paths::kPolicyDir;
    if (auto loaded = riskgate::agent::load_settings(cli.config_file, options); !loaded) {
      fmt::print(stderr, "riskgated: {}\n", loaded.error());
      return 2;
    }
  }
  auto given = [&](const char *flag) { return app.count(flag) > 0; };
  if (given("--listen"))
    options.listen = cli.listen;
  if (given("--upstream"))
    options.upstream = cli.upstream;
  if (given("--workers"))
    options.workers = cli.workers;
  if (given("--policy-dir"))
    options.policy_dir = cli.policy_dir;
  if (given("--identity-file"))
    options.identity_file = cli.identity_file;
  if (given("--cgroup"))
    options.cgroup = cli.cgroup;
  if (given("--xdp"))
    options.xdp_interfaces = cli.xdp_interfaces;
  if (given("--pin-root"))
    options.pin_root = cli.pin_root;
  if (given("--admin-metrics"))
    options.admin_metrics = cli.admin_metrics;
  if (given("--admin-socket"))
    options.admin_socket = cli.admin_socket;
  if (given("--audit-log"))
    options.audit_path = cli.audit_path;
  options.no_kernel = cli.no_kernel;
  options.uninstall = cli.uninstall;
  return riskgate::agent::run(options);
}
