// riskgatectl: inspects and changes riskgate's state straight from the pinned BPF maps, so it works
// while riskgated is down. Subcommands live in cmd_*.cpp (see ctl.h). Exit codes: 0 ok, 1 error,
// 2 usage.
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include <riskgate/common/version.h>
#include <riskgate/kernel/objects.h>
#include <riskgate/policy/yaml_reader.h>

#include "ctl.h"
#include "terminal_safe.h"

namespace riskgate::ctl {

namespace {

std::vector<CommandGroup> &groups()
{
  static std::vector<CommandGroup> registered;
  return registered;
}

}  // namespace

bool add_command_group(CommandGroup group)
{
  groups().push_back(group);
  return true;
}

const std::vector<CommandGroup> &command_groups()
{
  return groups();
}

void fail(const std::string &message)
{
  fmt::print(stderr, "riskgatectl: {}\n", terminal_safe(message));
  throw CLI::RuntimeError(1);
}

void usage_error(const std::string &message)
{
  fmt::print(stderr, "riskgatectl: {}\n", terminal_safe(message));
  throw CLI::RuntimeError(2);
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add(std::vector<std::string> row)
{
  row.resize(headers_.size());
  for (auto &cell : row) cell = terminal_safe(cell);
  rows_.push_back(std::move(row));
}

void Table::print(std::FILE *out) const
{
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) {
    width[i] = headers_[i].size();
    for (const auto &row : rows_) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string> &cells) {
    std::string text;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      // The last column is not padded, so lines carry no trailing blanks.
      text += i + 1 == cells.size() ? cells[i] : fmt::format("{:<{}}  ", cells[i], width[i]);
    }
    fmt::print(out, "{}\n", text);
  };
  line(headers_);
  for (const auto &row : rows_) line(row);
}

void print_line(std::string_view text)
{
  fmt::print("{}\n", terminal_safe(text));
}

void print_json(const nlohmann::json &value)
{
  fmt::print("{}\n", value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace riskgate::ctl

namespace {

using namespace riskgate::ctl;

// kubectl- and cilium-style global flags: accepted before or after any subcommand and listed in
// every subcommand's help, because each (sub)command gets its own copy bound to the same field.
void add_global_flags(CLI::App &app, Context &ctx)
{
  app.add_option("--pin-root", ctx.pin_root, "bpffs directory of riskgate's pins")->capture_default_str();
  app.add_option("--admin-socket", ctx.admin_socket, "riskgated's admin unix socket")->capture_default_str();
  app.add_option("--audit-log", ctx.audit_log,
                 "riskgated's decision log (rotated files beside it are read too)")
      ->capture_default_str();
  app.add_option("-o,--output", ctx.output, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  for (CLI::App *sub : app.get_subcommands({})) add_global_flags(*sub, ctx);
}

// The first word that is neither a flag nor a global flag's value: the command the user meant.
std::string command_word(int argc, char **argv)
{
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--pin-root" || arg == "--admin-socket" || arg == "--audit-log" || arg == "-o" ||
        arg == "--output") {
      ++i;
      continue;
    }
    if (!arg.starts_with('-'))
      return std::string(arg);
  }
  return {};
}

// "unknown command 'blok' (did you mean 'blocks'?)", exit 2, instead of CLI11's "A subcommand is
// required".
std::optional<int> refuse_unknown_command(const CLI::App &app, const std::string &word)
{
  if (word.empty())
    return std::nullopt;
  std::vector<std::string> names;
  for (const CLI::App *sub : app.get_subcommands({})) {
    if (sub->check_name(word))
      return std::nullopt;
    names.push_back(sub->get_name());
  }
  const std::vector<std::string_view> views(names.begin(), names.end());
  const auto near = riskgate::policy::closest(word, views);
  fmt::print(stderr, "riskgatectl: unknown command '{}'{}; see riskgatectl --help\n", terminal_safe(word),
             near ? fmt::format(" (did you mean '{}'?)", *near) : std::string());
  return 2;
}

void add_version(CLI::App &app, Context &ctx)
{
  auto *cmd =
      app.add_subcommand("version", "this build: version, git commit and the SHA-256 of each BPF object");
  cmd->callback([&ctx] {
    if (ctx.output != "json") {
      fmt::print("{}", riskgate::kernel::build_description("riskgatectl"));
      return;
    }
    nlohmann::json objects = nlohmann::json::object();
    for (const auto &o : riskgate::kernel::bpf_objects()) objects[o.name] = o.sha256;
    print_json({{"version", riskgate::version()}, {"bpf_objects", objects}});
  });
  // CLI11 ends the version text with a newline of its own.
  app.set_version_flag("--version", [] {
    std::string text = riskgate::kernel::build_description("riskgatectl");
    text.pop_back();
    return text;
  });
}

}  // namespace

int main(int argc, char **argv)
{
  CLI::App app{"riskgatectl: inspect riskgate decisions, blocks, connections and counters"};
  app.require_subcommand(1);
  Context ctx;
  for (CommandGroup group : command_groups()) group(app, ctx);
  add_version(app, ctx);
  add_global_flags(app, ctx);
  if (const auto refused = refuse_unknown_command(app, command_word(argc, argv)))
    return *refused;
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError &e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
