// riskgatectl blocks / block / unblock: the pinned block maps, read and written directly so they
// work while riskgated is down. Operator blocks carry RG_BLOCK_F_MANUAL.
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include <riskgate/admin/admin.h>
#include <riskgate/enforce/enforce.h>

#include "ctl.h"
#include <riskgate/enforce/map_enforcer.h>
#include <riskgate/common/net.h>

namespace riskgate::ctl {
namespace {

struct TargetArgs {
  std::string ip, identity, pair;
  std::uint64_t conn = 0;
};

void add_target_options(CLI::App *cmd, TargetArgs &args)
{
  auto *ip = cmd->add_option("--ip", args.ip, "an address or CIDR (10.0.0.0/24, fd00::/64)");
  auto *identity = cmd->add_option("--identity", args.identity, "an identity name or id");
  auto *pair = cmd->add_option("--pair", args.pair, "SOURCE,DESTINATION identities");
  auto *conn = cmd->add_option("--conn", args.conn, "a socket cookie (from `riskgatectl conns`)");
  ip->excludes(identity, pair, conn);
  identity->excludes(pair, conn);
  pair->excludes(conn);
}

BlockTarget target_from(const TargetArgs &args, const std::map<IdentityId, std::string> &names)
{
  BlockTarget t;
  if (!args.ip.empty()) {
    auto prefix = net::parse_prefix(args.ip);
    if (!prefix)
      fail(fmt::format("--ip {}: {}", args.ip, prefix.error()));
    t.scope = BlockScope::ip;
    t.address = prefix->address;
    t.prefix_len = prefix->prefix_len;
  } else if (!args.identity.empty()) {
    t.scope = BlockScope::identity;
    t.identity = resolve_identity(args.identity, names);
  } else if (!args.pair.empty()) {
    const auto comma = args.pair.find(',');
    if (comma == std::string::npos)
      fail(fmt::format("--pair {}: expected SOURCE,DESTINATION (two identities)", args.pair));
    t.scope = BlockScope::pair;
    t.identity = resolve_identity(args.pair.substr(0, comma), names);
    t.peer_identity = resolve_identity(args.pair.substr(comma + 1), names);
  } else if (args.conn != 0) {
    t.scope = BlockScope::connection;
    t.socket_cookie = args.conn;
  } else {
    throw CLI::ValidationError("target", "one of --ip, --identity, --pair or --conn is required");
  }
  return t;
}

std::string target_text(const BlockTarget &t, const std::map<IdentityId, std::string> &names)
{
  switch (t.scope) {
    case BlockScope::ip: {
      net::IpPrefix prefix;
      prefix.address = t.address;
      prefix.prefix_len = t.prefix_len;
      return net::to_string(prefix);
    }
    case BlockScope::identity: return identity_label(t.identity, names);
    case BlockScope::pair:
      return identity_label(t.identity, names) + " -> " + identity_label(t.peer_identity, names);
    case BlockScope::connection: return std::to_string(t.socket_cookie);
  }
  return "";
}

nlohmann::json target_json(const BlockTarget &t, const std::map<IdentityId, std::string> &names)
{
  nlohmann::json out = {{"scope", to_string(t.scope)}, {"target", target_text(t, names)}};
  if (t.scope == BlockScope::identity || t.scope == BlockScope::pair)
    out["identity"] = t.identity;
  if (t.scope == BlockScope::pair)
    out["peer_identity"] = t.peer_identity;
  if (t.scope == BlockScope::connection)
    out["cookie"] = t.socket_cookie;
  return out;
}

// Logs the operator's action in the agent's audit chain; false when no agent is running to do it.
bool audit_action(const Context &ctx, const std::string &action, const BlockTarget &target,
                  std::uint64_t ttl_ms, const std::string &reason)
{
  const char *sudo_user = std::getenv("SUDO_USER");
  const std::string user = sudo_user ? sudo_user : fmt::format("uid {}", ::getuid());
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return admin::request(ctx.admin_socket,
                        {{"cmd", "operator"},
                         {"action", action},
                         {"target", describe(target)},
                         {"ttl_ms", ttl_ms},
                         {"reason", reason},
                         {"user", user},
                         {"time_unix_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()}})
      .ok();
}

void note_not_audited()
{
  std::fflush(stdout);  // after the result line, also when both go to one pipe
  fmt::print(stderr, "note: riskgated is not running, so this is not in the audit log\n");
}

std::string expiry_text(const rg_block_val &value, std::uint64_t now)
{
  if (value.expires_ns == RG_EXPIRES_NEVER)
    return "never";
  return format_elapsed_ms((value.expires_ns - now) / 1'000'000);
}

void add_blocks(CLI::App &app, Context &ctx)
{
  auto *blocks = app.add_subcommand("blocks", "blocks in force, from the pinned maps");
  blocks->callback([&ctx] {
    auto maps = open_maps(ctx);
    enforce::MapEnforcer enforcer(maps);
    auto active = enforcer.active();
    if (!active)
      fail(fmt::format("{}: run as root", active.error()));
    const auto names = identity_names(maps);
    const std::uint64_t now = kernel::monotonic_now_ns();
    if (ctx.json()) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto &b : *active) {
        auto item = target_json(b.target, names);
        item["expires_in_ms"] = b.value.expires_ns == RG_EXPIRES_NEVER
                                    ? nlohmann::json(nullptr)
                                    : nlohmann::json((b.value.expires_ns - now) / 1'000'000);
        item["decision_id"] = b.value.decision_id;
        item["manual"] = (b.value.flags & RG_BLOCK_F_MANUAL) != 0;
        out.push_back(std::move(item));
      }
      print_json(out);
      return;
    }
    Table table({"SCOPE", "TARGET", "EXPIRES IN", "BY"});
    for (const auto &b : *active)
      table.add(
          {to_string(b.target.scope), target_text(b.target, names), expiry_text(b.value, now),
           b.value.flags & RG_BLOCK_F_MANUAL ? "operator" : fmt::format("decision {}", b.value.decision_id)});
    table.print();
  });

  static TargetArgs block_args;
  static std::string ttl, reason;
  auto *block = app.add_subcommand("block", "block a target now, in the kernel (an operator block)");
  add_target_options(block, block_args);
  block->add_option("--ttl", ttl, "how long (90s, 10m, 1h30m, 2d); default: until unblocked");
  block->add_option("--reason", reason, "why, shown in the output");
  block->callback([&ctx] {
    const std::uint64_t ttl_ms = ttl.empty() ? 0 : duration_option_ms("--ttl", ttl);
    if (!ttl.empty() && ttl_ms == 0)
      usage_error(fmt::format(
          "--ttl {}: a block lasts longer than 0; leave --ttl out to block until unblocked", ttl));
    auto maps = open_maps(ctx);
    const auto names = identity_names(maps);
    BlockRequest request;
    request.target = target_from(block_args, names);
    request.ttl_ms = ttl_ms;
    request.reason = reason;
    request.manual = true;
    enforce::MapEnforcer enforcer(maps);
    if (auto ok = enforcer.block(request); !ok)
      fail(fmt::format("{}: run as root; if the map is full, unblock something or raise its size",
                       ok.error()));
    const bool audited = audit_action(ctx, "block", request.target, ttl_ms, reason);
    if (ctx.json()) {
      auto out = target_json(request.target, names);
      out["ttl_ms"] = ttl_ms ? nlohmann::json(ttl_ms) : nlohmann::json(nullptr);
      out["reason"] = reason;
      out["audited"] = audited;
      print_json({{"blocked", out}});
    } else {
      print_line(fmt::format("blocked {} {} {}{}", to_string(request.target.scope),
                             target_text(request.target, names),
                             ttl_ms ? "for " + format_duration_ms(ttl_ms) : "until unblocked",
                             reason.empty() ? "" : fmt::format(" ({})", reason)));
      if (!audited)
        note_not_audited();
    }
  });

  static TargetArgs unblock_args;
  auto *unblock =
      app.add_subcommand("unblock", "lift a block now; automatic re-blocks of it wait out a grace period");
  add_target_options(unblock, unblock_args);
  unblock->callback([&ctx] {
    auto maps = open_maps(ctx);
    const auto names = identity_names(maps);
    const BlockTarget target = target_from(unblock_args, names);
    enforce::MapEnforcer enforcer(maps);
    auto removed = enforcer.remove(target, true);
    if (!removed)
      fail(fmt::format("{}: run as root", removed.error()));
    // The grace is in the pinned maps now; a running agent also drops any block write for this
    // target that it is still retrying.
    const bool agent_told =
        admin::request(ctx.admin_socket, {{"cmd", "manual_unblock"}, {"target", describe(target)}}).ok();
    const bool audited = *removed && audit_action(ctx, "unblock", target, 0, "");
    if (ctx.json()) {
      auto out = target_json(target, names);
      out["was_blocked"] = *removed;
      out["agent_notified"] = agent_told;
      out["audited"] = audited;
      print_json({{"unblocked", out}});
      return;
    }
    if (!*removed) {
      print_line(fmt::format("{} {} was not blocked", to_string(target.scope), target_text(target, names)));
      return;
    }
    print_line(fmt::format("unblocked {} {}", to_string(target.scope), target_text(target, names)));
    if (!audited)
      note_not_audited();
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_blocks);
