#include "agent/datapath_startup.h"

#include <cstdio>

#include <fmt/format.h>

#include "kernel/mounts.h"

namespace riskgate::agent {

Result<std::unique_ptr<kernel::Datapath>> start_datapath(const Options &options)
{
  kernel::DatapathConfig config;
  config.pin_root = options.pin_root;
  config.xdp_interfaces = options.xdp_interfaces;
  config.cgroup = options.cgroup;
  if (config.cgroup.empty()) {
    auto root = kernel::cgroup2_root();
    if (!root)
      return make_error(root.error());
    config.cgroup = *root;
  }
  auto datapath = kernel::Datapath::start(config);
  if (!datapath)
    return make_error(fmt::format("kernel datapath: {} (run with --no-kernel to start the proxy alone)",
                                  datapath.error()));
  const auto &dp = **datapath;
  fmt::print(stderr, "riskgated: datapath attached to cgroup {}, pins under {} ({})\n", config.cgroup,
             config.pin_root,
             dp.adopted_maps() ? fmt::format("re-adopted existing maps and {} links", dp.adopted_links())
                               : std::string("fresh maps"));
  for (const auto &xdp : dp.xdp()) {
    if (xdp.native)
      fmt::print(stderr, "riskgated: XDP gate on {} (native)\n", xdp.interface);
    else
      fmt::print(stderr, "riskgated: WARNING: XDP gate on {} in GENERIC mode (slower): native attach failed: {}\n",
                 xdp.interface, xdp.fallback_reason);
  }
  return datapath;
}

void warn_no_kernel()
{
  fmt::print(stderr,
             "riskgated: ************************************************************\n"
             "riskgated: --no-kernel: NO KERNEL ENFORCEMENT. No BPF program is loaded:\n"
             "riskgated: blocks are not enforced on packets, connects or open connections,\n"
             "riskgated: and peers have no kernel-attested identity. Development only.\n"
             "riskgated: ************************************************************\n");
}

}  // namespace riskgate::agent
