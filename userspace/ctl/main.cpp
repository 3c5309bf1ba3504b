// riskgatectl: inspects and changes riskgate's state straight from the pinned BPF maps, so it works
// while riskgated is down. Subcommands live in cmd_*.cpp (see ctl.h). Exit codes: 0 ok, 1 error,
// 2 usage.
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

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

int main(int argc, char **argv)
{
  using namespace riskgate::ctl;
  CLI::App app{"riskgatectl: inspect riskgate decisions, blocks, connections and counters"};
  app.require_subcommand(1);
  Context ctx;
  app.add_option("--pin-root", ctx.pin_root, "bpffs directory of riskgate's pins")->default_val(ctx.pin_root);
  app.add_option("--admin-socket", ctx.admin_socket, "riskgated's admin unix socket")
      ->default_val(ctx.admin_socket);
  app.add_option("--audit-log", ctx.audit_log,
                 "riskgated's decision log (rotated files beside it are read too)")
      ->default_val(ctx.audit_log);
  app.add_option("-o,--output", ctx.output, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->default_val(ctx.output);
  for (CommandGroup group : command_groups()) group(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError &e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
