// riskgatectl's shared pieces. Each command group lives in its own cmd_<group>.cpp and registers its
// subcommands on the CLI11 app through RG_CTL_COMMAND_GROUP, so adding a group touches no other file:
//
//   namespace { void add_policy(CLI::App &app, riskgate::ctl::Context &ctx) { ... } }
//   RG_CTL_COMMAND_GROUP(add_policy);
//
// Callbacks report errors with ctl::fail("what went wrong: what to do"), which prints the message and
// makes riskgatectl exit 1; CLI11 usage errors exit 2, and so do option values only a callback can
// judge (ctl::usage_error: "--ttl 90: ..."); success exits 0.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <map>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <riskgate/common/duration.h>
#include <riskgate/common/paths.h>
#include <riskgate/common/identity.h>

#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::ctl {

// Options every subcommand sees (set before any callback runs).
struct Context {
  std::string pin_root = paths::kPinRoot;
  std::string output = "table";  // "table" or "json"
  std::string admin_socket = paths::kAdminSocket;
  std::string audit_log = paths::kAuditLog;
  bool json() const { return output == "json"; }
};

using CommandGroup = void (*)(CLI::App &app, Context &ctx);

// Called from static initialisers; main() adds every group in link order.
bool add_command_group(CommandGroup group);
const std::vector<CommandGroup> &command_groups();

// Prints "riskgatectl: <message>" on stderr (terminal_safe: messages quote names and paths) and ends
// the command with exit code 1.
[[noreturn]] void fail(const std::string &message);
// The same with exit code 2: the command line is wrong, as for CLI11's own usage errors.
[[noreturn]] void usage_error(const std::string &message);

// Human output: columns sized to their widest cell, one header line. Cells are stored terminal_safe
// (terminal_safe.h), so a table never carries control bytes to the terminal.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  void print(std::FILE *out = stdout) const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// One line of human output on stdout: the text terminal_safe, then the newline (so no field ends the
// line). Every text line riskgatectl prints goes through this or Table.
void print_line(std::string_view text);
// -o json: JSON for programs, not escaped for terminals (JSON escapes the C0 controls itself; other
// characters go out as UTF-8); bytes that are not UTF-8 (pinned names, file names) become U+FFFD.
void print_json(const nlohmann::json &value);

// The pinned maps, or fail() saying how to get them (riskgated not started, wrong --pin-root).
kernel::PinnedMaps open_maps(const Context &ctx);
// Identity names from the pinned id->name map; "name (id)" for tables, the id alone when unnamed.
std::map<IdentityId, std::string> identity_names(const kernel::PinnedMaps &maps);
// The identity's name ("world" for 0; empty when the pins name no such id), and "name (id)" for tables.
std::string identity_name(IdentityId id, const std::map<IdentityId, std::string> &names);
std::string identity_label(IdentityId id, const std::map<IdentityId, std::string> &names);
// "frontend" or "7" -> id, through the pinned names; fail()s naming the known identities.
IdentityId resolve_identity(const std::string &text, const std::map<IdentityId, std::string> &names);

// The value of a duration option (riskgate/common/duration.h), or usage_error("--ttl 90: '90' is not a
// duration: ...").
std::uint64_t duration_option_ms(std::string_view option, const std::string &text);
// Ages and countdowns in tables: two units, "9m58s", "1d2h".
std::string format_elapsed_ms(std::uint64_t ms);
std::string format_unix_ns(std::uint64_t unix_ns);  // "2026-11-29T14:03:12.345Z"

}  // namespace riskgate::ctl

#define RG_CTL_CONCAT_(a, b) a##b
#define RG_CTL_CONCAT(a, b) RG_CTL_CONCAT_(a, b)
#define RG_CTL_COMMAND_GROUP(fn)                                              \
  [[maybe_unused]] static const bool RG_CTL_CONCAT(rg_ctl_group_, __LINE__) = \
      ::riskgate::ctl::add_command_group(fn)
