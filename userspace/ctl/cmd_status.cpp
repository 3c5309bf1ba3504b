// riskgatectl status: what riskgate has pinned on this node.
#include <filesystem>

#include <fmt/format.h>

#include "ctl/ctl.h"

namespace riskgate::ctl {
namespace {

void add_status(CLI::App &app, Context &ctx)
{
  auto *status = app.add_subcommand("status", "pinned maps and links, agent up or down");
  status->callback([&ctx] {
    if (!std::filesystem::is_directory(ctx.pin_root))
      fail(fmt::format("{} does not exist: riskgated has not run on this node (start it, or pass --pin-root)",
                       ctx.pin_root));
    for (const auto &entry : std::filesystem::directory_iterator(ctx.pin_root))
      fmt::print("{}\n", entry.path().filename().string());
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_status);
