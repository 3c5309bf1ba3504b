// riskgatectl audit verify FILE...: proves the decision log's chain is whole, or names the line.
#include <fmt/format.h>

#include <riskgate/audit/decision_log.h>

#include "ctl.h"

namespace riskgate::ctl {
namespace {

struct AuditArgs {
  std::vector<std::string> files;
};

void add_audit(CLI::App &app, Context &ctx)
{
  auto *audit = app.add_subcommand("audit", "the decision log's integrity");
  audit->require_subcommand(1);
  auto *verify = audit->add_subcommand(
      "verify", "check the hash chain of log files (any order; a glob like decisions.jsonl* works)");
  static AuditArgs args;
  verify->add_option("FILE", args.files, "log files (default: --audit-log and its rotated files)");
  verify->callback([&ctx] {
    auto files = args.files.empty() ? audit::log_files(ctx.audit_log) : args.files;
    if (files.empty())
      fail(fmt::format("no log at {}: pass the log files, or --audit-log PATH", ctx.audit_log));
    const auto report = audit::verify_chain(files);
    if (ctx.json()) {
      nlohmann::json problems = nlohmann::json::array();
      for (const auto &p : report.problems)
        problems.push_back({{"file", p.file}, {"line", p.line}, {"message", p.message}});
      print_json({{"ok", report.ok()},
                  {"files", files},
                  {"lines", report.lines},
                  {"first_seq", report.first_seq},
                  {"last_seq", report.last_seq},
                  {"last_hash", report.last_hash},
                  {"starts_mid_chain", report.starts_mid_chain},
                  {"problems", problems}});
    } else {
      for (const auto &p : report.problems) print_line(fmt::format("{}:{}: {}", p.file, p.line, p.message));
      if (report.ok())
        print_line(fmt::format("ok: {} lines, seq {}..{}{}, head {}", report.lines, report.first_seq,
                               report.last_seq, report.starts_mid_chain ? " (older lines rotated away)" : "",
                               report.last_hash));
    }
    if (!report.ok())
      fail(
          fmt::format("audit chain broken: {} problem(s); the lines named above were removed, edited or "
                      "reordered after they were written",
                      report.problems.size()));
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_audit);
