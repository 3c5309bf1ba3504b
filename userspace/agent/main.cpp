// riskgated: the node agent. Settings come from defaults, then the --config file, then the command
// line (a flag given wins over the file); then the agent runs (agent/agent.h).
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <riskgate/common/paths.h>
#include <riskgate/kernel/objects.h>

#include "agent.h"

namespace {

// The --config value, found before the full parse so that the file's settings can become the
// defaults the command line overrides. Parse errors are left for the full parse to report.
std::string settings_file(int argc, char **argv)
{
  CLI::App pre;
  pre.allow_extras();
  pre.set_help_flag();
  std::string file;
  pre.add_option("--config", file);
  try {
    pre.parse(argc, argv);
  } catch (const CLI::ParseError &) {
  }
  return file;
}

}  // namespace

int main(int argc, char **argv)
{
  riskgate::agent::Options options;
  options.config_file = settings_file(argc, argv);
  riskgate::Result<void> settings;
  if (!options.config_file.empty()) {
    options.policy_dir = riskgate::paths::kPolicyDir;
    settings = riskgate::agent::load_settings(options.config_file, options);
  }
  // Every flag binds to the options the file produced: a flag given wins, one not given leaves the
  // file's (or the built-in) value, which --help shows as the default.
  CLI::App app{"riskgated: per-request risk scoring proxy with in-kernel enforcement"};
  app.add_option("--config", options.config_file,
                 "agent settings file (YAML); without it the embedded default policy runs")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", options.listen, "gateway listener HOST:PORT (quick start, no config file)");
  app.add_option("--upstream", options.upstream, "upstream HOST:PORT the gateway forwards to");
  app.add_option("--workers", options.workers, "worker threads, one io_uring each (default: one per core)")
      ->check(CLI::Range(1, 256));
  app.add_option("--policy-dir", options.policy_dir,
                 "policy directory or file (YAML, hot-reloaded; default: the embedded default policy)");
  app.add_option("--identity-file", options.identity_file,
                 "static workload identities (YAML, `identities:` list; reloaded on change)");
  app.add_option(
      "--cgroup", options.cgroup,
      "cgroup v2 directory the cgroup programs attach to (default: the cgroup v2 root, the whole node)");
  app.add_option("--xdp", options.xdp_interfaces, "interface for the XDP gate (repeatable)");
  app.add_option("--pin-root", options.pin_root, "bpffs directory for pinned maps and links")
      ->capture_default_str();
  app.add_option("--admin-metrics", options.admin_metrics,
                 "admin HTTP HOST:PORT for /metrics and /healthz (off: none)")
      ->capture_default_str();
  app.add_option("--admin-socket", options.admin_socket, "unix socket for riskgatectl (mode 0600)")
      ->capture_default_str();
  app.add_option("--audit-log", options.audit_path, "hash-chained decision log (JSON lines)")
      ->capture_default_str();
  app.add_flag("--no-kernel", options.no_kernel, "proxy only: load no BPF program (development)");
  app.add_flag("--uninstall", options.uninstall, "detach every program and remove every pin, then exit");
  const auto build = [] { return riskgate::kernel::build_description("riskgated"); };
  app.set_version_flag("--version", [&build] {
    std::string text = build();
    text.pop_back();  // CLI11 ends the version text with a newline of its own
    return text;
  });
  CLI::App *version =
      app.add_subcommand("version", "this build: version, git commit and the SHA-256 of each BPF object");
  CLI11_PARSE(app, argc, argv);
  if (*version) {
    fmt::print("{}", build());
    return 0;
  }
  if (!settings) {
    fmt::print(stderr, "riskgated: {}\n", settings.error());
    return 2;
  }
  return riskgate::agent::run(options);
}
