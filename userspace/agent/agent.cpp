#include "agent/agent.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

namespace riskgate::agent {

namespace {

int uninstall(const Options &options)
{
  // Removing the link pins detaches the programs (no other reference holds them); removing the map
  // pins frees the maps once no program uses them.
  std::error_code ec;
  const auto removed = std::filesystem::remove_all(options.pin_root, ec);
  if (ec) {
    fmt::print(stderr, "riskgated: remove {}: {}\n", options.pin_root, ec.message());
    return 1;
  }
  fmt::print("riskgated: removed {} pinned objects under {}\n", removed, options.pin_root);
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
