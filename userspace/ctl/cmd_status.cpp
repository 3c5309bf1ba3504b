// riskgatectl status: the agent (through its admin socket), and what riskgate has in the kernel
// (from the pins alone): links with their programs, maps with their fill level.
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <riskgate/admin/admin.h>

#include "ctl.h"
#include <riskgate/kernel/inventory.h>

namespace riskgate::ctl {
namespace {

// A status value as an operator reads it: strings bare, an object as "allow 0, block 3", a list
// joined by "; ", numbers and booleans as they are.
std::string readable(const nlohmann::json &value)
{
  if (value.is_string())
    return value.get<std::string>();
  std::vector<std::string> parts;
  if (value.is_object())
    for (const auto &[key, item] : value.items()) parts.push_back(key + " " + readable(item));
  else if (value.is_array())
    for (const auto &item : value) parts.push_back(readable(item));
  else
    return value.dump();
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, value.is_object() ? ", " : "; "));
}

// The agent's status reply, one "key: value" line each; a list of objects (the listeners) one
// element a line below its key.
void print_agent(const Context &ctx, const nlohmann::json &status)
{
  print_line(fmt::format("agent: up ({})", ctx.admin_socket));
  for (const auto &[key, value] : status.items()) {
    if (value.is_array() && !value.empty() && value.front().is_object()) {
      print_line(fmt::format("  {}:", key));
      for (const auto &item : value) print_line("    " + readable(item));
    } else {
      print_line(fmt::format("  {}: {}", key, readable(value)));
    }
  }
}

void add_status(CLI::App &app, Context &ctx)
{
  auto *status = app.add_subcommand("status", "agent up or down, attached programs, maps and fill levels");
  status->callback([&ctx] {
    auto agent = admin::request(ctx.admin_socket, {{"cmd", "status"}});
    // An agent without the kernel datapath (--no-kernel) is still worth reporting.
    if (agent && !std::filesystem::is_directory(ctx.pin_root)) {
      if (ctx.json()) {
        print_json({{"agent", {{"up", true}, {"status", *agent}}},
                    {"pin_root", ctx.pin_root},
                    {"links", nullptr},
                    {"maps", nullptr}});
      } else {
        print_agent(ctx, *agent);
        print_line("");
        print_line(
            fmt::format("kernel: nothing pinned at {} (the agent runs without the datapath)", ctx.pin_root));
      }
      return;
    }
    auto maps = open_maps(ctx);
    auto links = kernel::pinned_links(ctx.pin_root);
    auto inventory = kernel::map_inventory(maps);
    if (!links || !inventory)
      fail(fmt::format("{}: run as root", !links ? links.error() : inventory.error()));
    if (ctx.json()) {
      nlohmann::json out;
      out["agent"] = agent ? nlohmann::json{{"up", true}, {"status", *agent}}
                           : nlohmann::json{{"up", false}, {"error", agent.error()}};
      out["pin_root"] = ctx.pin_root;
      out["links"] = nlohmann::json::array();
      for (const auto &l : *links)
        out["links"].push_back({{"pin", l.pin},
                                {"link_id", l.link_id},
                                {"link_type", l.link_type},
                                {"attach_type", l.attach_type},
                                {"attached_to", l.attached_to},
                                {"prog_id", l.prog_id},
                                {"prog_name", l.prog_name},
                                {"verified_insns", l.verified_insns},
                                {"xlated_insns", l.xlated_insns}});
      out["maps"] = nlohmann::json::array();
      for (const auto &m : *inventory)
        out["maps"].push_back(
            {{"name", m.name},
             {"type", m.type},
             {"id", m.id},
             {"max_entries", m.max_entries},
             {"entries", m.entries ? nlohmann::json(*m.entries) : nlohmann::json(nullptr)}});
      print_json(out);
      return;
    }
    if (agent)
      print_agent(ctx, *agent);
    else
      print_line(
          fmt::format("agent: down ({}); the kernel keeps enforcing the pinned blocks", agent.error()));
    print_line("");
    print_line(fmt::format("links under {}/links:", ctx.pin_root));
    Table link_table({"PIN", "LINK", "TYPE", "ATTACHED TO", "PROGRAM", "VERIFIED INSNS", "XLATED INSNS"});
    for (const auto &l : *links)
      link_table.add({l.pin, std::to_string(l.link_id), l.attach_type, l.attached_to,
                      fmt::format("{} (id {})", l.prog_name, l.prog_id), std::to_string(l.verified_insns),
                      std::to_string(l.xlated_insns)});
    link_table.print();
    print_line("");
    print_line("maps:");
    Table map_table({"MAP", "TYPE", "ID", "ENTRIES", "MAX", "FILL"});
    for (const auto &m : *inventory)
      map_table.add({m.name, m.type, std::to_string(m.id), m.entries ? std::to_string(*m.entries) : "-",
                     std::to_string(m.max_entries),
                     m.entries && m.max_entries
                         ? fmt::format("{:.1f}%", 100.0 * static_cast<double>(*m.entries) / m.max_entries)
                         : "-"});
    map_table.print();
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_status);
