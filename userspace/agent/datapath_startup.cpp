#include "datapath_startup.h"

#include <cstdio>

#include <fmt/format.h>

#include <riskgate/kernel/mounts.h>

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
    return make_error(
        fmt::format("kernel datapath: {} (run with --no-kernel to start the proxy alone)", datapath.error()));
  // riskgated's own connections (the proxy's upstream connects) are never redirected nor denied,
  // and its sockets stay out of sk_msg: the proxy enforces at L7 itself.
  auto own = kernel::own_cgroup_dir();
  auto own_id = own ? kernel::cgroup_id(*own) : Result<std::uint64_t>(make_error(own.error()));
  if (!own_id)
    return make_error(fmt::format("riskgated's own cgroup: {}", own_id.error()));
  auto &maps = (*datapath)->maps();
  if (auto ok = maps.put_cgroup(*own_id, RG_IDENTITY_WORLD, RG_CGROUP_F_PROXY); !ok)
    return make_error(ok.error());
  auto l7 = maps.l7_config();
  if (!l7)
    return make_error(l7.error());
  l7->proxy_cgroup_id = *own_id;
  if (auto ok = maps.set_l7_config(*l7); !ok)
    return make_error(ok.error());
  const auto &dp = **datapath;
  fmt::print(stderr, "riskgated: datapath attached to cgroup {}, pins under {} ({})\n", config.cgroup,
             config.pin_root,
             dp.adopted_maps() ? fmt::format("re-adopted existing maps and {} links", dp.adopted_links())
                               : std::string("fresh maps"));
  for (const auto &xdp : dp.xdp()) {
    if (xdp.native)
      fmt::print(stderr, "riskgated: XDP gate on {} (native)\n", xdp.interface);
    else
      fmt::print(stderr,
                 "riskgated: WARNING: XDP gate on {} in GENERIC mode (slower): native attach failed: {}\n",
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
