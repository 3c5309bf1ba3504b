#include "agent/agent.h"

#include <cstdio>

#include <fmt/format.h>

#include "kernel/datapath.h"

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

}  // namespace

int run(const Options &options)
{
  if (options.uninstall)
    return uninstall(options);
  fmt::print(stderr, "riskgated: the proxy is not built yet (issue 4); only --uninstall works\n");
  return 1;
}

}  // namespace riskgate::agent
