// riskgatectl conns / identities / trusted / stats: the datapath's tables and counters, from the pins.
#include <fmt/format.h>

#include "ctl.h"
#include <riskgate/common/reasons.h>
#include <riskgate/common/net.h>

namespace riskgate::ctl {
namespace {

std::string endpoint_text(const rg_u8 (&addr)[RG_IPV6_LEN], std::uint16_t port)
{
  net::MappedAddr mapped;
  std::copy(std::begin(addr), std::end(addr), mapped.begin());
  return net::endpoint_string(net::from_mapped(mapped, port));
}

std::vector<std::string> sock_flags(std::uint32_t flags)
{
  std::vector<std::string> out;
  if (flags & RG_SOCK_F_PASSIVE)
    out.emplace_back("passive");
  if (flags & RG_SOCK_F_FASTPATH)
    out.emplace_back("fastpath");
  if (flags & RG_SOCK_F_GOVERNED)
    out.emplace_back("governed");
  if (flags & RG_SOCK_F_DROPPED)
    out.emplace_back("dropped");
  return out;
}

void add_kernel_views(CLI::App &app, Context &ctx)
{
  auto *conns = app.add_subcommand("conns", "connections the kernel tagged with identities");
  conns->callback([&ctx] {
    auto maps = open_maps(ctx);
    auto all = maps.connections();
    if (!all)
      fail(fmt::format("{}: run as root", all.error()));
    const auto names = identity_names(maps);
    const std::uint64_t now = kernel::monotonic_now_ns();
    nlohmann::json out = nlohmann::json::array();
    Table table({"COOKIE", "LOCAL", "REMOTE", "FROM", "TO", "FLAGS", "AGE"});
    for (const auto &tag : *all) {
      const auto flags = sock_flags(tag.flags);
      const std::uint64_t age_ms = now > tag.established_ns ? (now - tag.established_ns) / 1'000'000 : 0;
      if (ctx.json()) {
        out.push_back({{"cookie", tag.cookie},
                       {"local", endpoint_text(tag.local_addr, tag.local_port)},
                       {"remote", endpoint_text(tag.remote_addr, tag.remote_port)},
                       {"src_identity", tag.src_identity},
                       {"dst_identity", tag.dst_identity},
                       {"flags", flags},
                       {"fastpath", (tag.flags & RG_SOCK_F_FASTPATH) != 0},
                       {"age_ms", age_ms}});
      } else {
        table.add({std::to_string(tag.cookie), endpoint_text(tag.local_addr, tag.local_port),
                   endpoint_text(tag.remote_addr, tag.remote_port), identity_label(tag.src_identity, names),
                   identity_label(tag.dst_identity, names), fmt::format("{}", fmt::join(flags, ",")),
                   format_elapsed_ms(age_ms)});
      }
    }
    ctx.json() ? print_json(out) : table.print();
  });

  auto *identities = app.add_subcommand("identities", "the identity registry as the kernel knows it");
  identities->callback([&ctx] {
    auto maps = open_maps(ctx);
    const auto names = identity_names(maps);
    auto cgroups = maps.cgroups();
    auto ipcache = maps.ipcache();
    if (!cgroups || !ipcache)
      fail(fmt::format("{}: run as root", !cgroups ? cgroups.error() : ipcache.error()));
    std::map<IdentityId, std::pair<std::vector<std::string>, std::vector<std::string>>> by_id;
    for (const auto &[id, name] : names) by_id[id];
    for (const auto &c : *cgroups)
      by_id[c.identity].first.push_back(std::to_string(c.cgroup_id) +
                                        (c.flags & RG_CGROUP_F_PROXY ? " (proxy)" : ""));
    for (const auto &e : *ipcache) by_id[e.identity].second.push_back(net::to_string(e.prefix));
    nlohmann::json out = nlohmann::json::array();
    Table table({"ID", "NAME", "CGROUPS", "ADDRESSES"});
    for (const auto &[id, members] : by_id) {
      const auto name = identity_name(id, names);
      if (ctx.json())
        out.push_back(
            {{"id", id}, {"name", name}, {"cgroups", members.first}, {"addresses", members.second}});
      else
        table.add({std::to_string(id), name, fmt::format("{}", fmt::join(members.first, " ")),
                   fmt::format("{}", fmt::join(members.second, " "))});
    }
    ctx.json() ? print_json(out) : table.print();
  });

  auto *trusted = app.add_subcommand("trusted", "local identity pairs whose connections go socket to socket");
  trusted->callback([&ctx] {
    auto maps = open_maps(ctx);
    auto pairs = maps.trusted();
    if (!pairs)
      fail(fmt::format("{}: run as root", pairs.error()));
    const auto names = identity_names(maps);
    // Who wrote the pair: riskgated from the policy's fastPath, or someone by hand (bpftool, tests).
    const auto origin_of = [](std::uint32_t origin) {
      return origin == RG_TRUSTED_F_POLICY ? "policy" : "manual";
    };
    nlohmann::json out = nlohmann::json::array();
    Table table({"FROM", "TO", "ORIGIN"});
    for (const auto &pair : *pairs) {
      if (ctx.json())
        out.push_back({{"from", identity_name(pair.client, names)},
                       {"from_id", pair.client},
                       {"to", identity_name(pair.server, names)},
                       {"to_id", pair.server},
                       {"origin", origin_of(pair.origin)}});
      else
        table.add(
            {identity_label(pair.client, names), identity_label(pair.server, names), origin_of(pair.origin)});
    }
    ctx.json() ? print_json(out) : table.print();
  });

  static bool all_reasons = false;
  auto *stats = app.add_subcommand("stats", "kernel counters by reason (summed over CPUs)");
  stats->add_flag("--all", all_reasons, "also reasons that never counted");
  stats->callback([&ctx] {
    auto maps = open_maps(ctx);
    auto counters = maps.counters();
    if (!counters)
      fail(fmt::format("{}: run as root", counters.error()));
    nlohmann::json out = nlohmann::json::object();
    Table table({"REASON", "COUNT"});
    for (std::uint32_t reason = 1; reason < RG_R_MAX; ++reason) {
      const auto value = (*counters)[reason];
      const auto name = reason_name(reason);
      if (value == 0 && (!all_reasons || name.starts_with("reason_")))
        continue;
      out[name] = value;
      table.add({name, std::to_string(value)});
    }
    ctx.json() ? print_json(out) : table.print();
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_kernel_views);
