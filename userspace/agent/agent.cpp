#include "agent/agent.h"

#include <csignal>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "agent/allow_hook.h"
#include "agent/datapath_startup.h"
#include "kernel/datapath.h"
#include "proxy/proxy.h"

namespace riskgate::agent {

namespace {

int uninstall(const Options &options)
{
  auto removed = kernel::Datapath::uninstall(options.pin_root);
  if (!removed) {
    fmt::print(stderr, "riskgated: uninstall: {}\n", removed.error());
    return 1;
  }
  fmt::print("riskgated: removed {} pinned objects under {}\n", *removed, options.pin_root);
  return 0;
}

// Quick start: one listener -> one upstream, until SIGTERM/SIGINT, then a graceful drain.
int run_gateway(const Options &options)
{
  proxy::ProxyConfig config;
  config.workers = options.workers;
  config.listeners.push_back(proxy::ListenerConfig{"gateway", options.listen, "upstream", false});
  config.upstreams.push_back(proxy::UpstreamConfig{"upstream", options.upstream});

  // Block the stop signals before any worker exists so that only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  AllowHook hook;
  auto gateway = proxy::Proxy::create(std::move(config), hook);
  if (!gateway) {
    fmt::print(stderr, "riskgated: {}\n", gateway.error());
    return 1;
  }
  if (auto started = (*gateway)->start(); !started) {
    fmt::print(stderr, "riskgated: {}\n", started.error());
    return 1;
  }
  fmt::print(stderr, "riskgated: gateway {} -> {} ({} workers, port {})\n", options.listen, options.upstream,
             (*gateway)->workers(), (*gateway)->listen_port(0));
  int signal = 0;
  sigwait(&stop_signals, &signal);
  fmt::print(stderr, "riskgated: signal {}: draining\n", signal);
  (*gateway)->stop();
  return 0;
}

}  // namespace

int run(const Options &options)
{
  if (options.uninstall)
    return uninstall(options);
  // Stop signals are taken by sigwait only: block them before any thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<kernel::Datapath> datapath;
  if (options.no_kernel) {
    warn_no_kernel();
  } else {
    auto started = start_datapath(options);
    if (!started) {
      fmt::print(stderr, "riskgated: {}\n", started.error());
      return 1;
    }
    datapath = std::move(*started);
  }
  std::optional<DatapathMaintenance> maintenance;
  if (datapath)
    maintenance.emplace(*datapath);

  if (!options.listen.empty() || !options.upstream.empty()) {
    if (options.listen.empty() || options.upstream.empty()) {
      fmt::print(stderr, "riskgated: --listen and --upstream go together\n");
      return 2;
    }
    return run_gateway(options);
  }
  if (!datapath) {
    fmt::print(stderr, "riskgated: nothing to run: give --listen HOST:PORT --upstream HOST:PORT\n");
    return 2;
  }
  // Kernel only: enforcement, expiry housekeeping and pins, until SIGTERM/SIGINT. The links and
  // maps stay pinned afterwards: enforcement continues until `riskgated --uninstall`.
  fmt::print(stderr, "riskgated: no --listen: running the kernel datapath only\n");
  int signal = 0;
  sigwait(&stop_signals, &signal);
  fmt::print(stderr, "riskgated: signal {}: stopping; the datapath stays attached (riskgated --uninstall removes it)\n",
             signal);
  return 0;
}

}  // namespace riskgate::agent
