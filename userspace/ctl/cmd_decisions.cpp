// riskgatectl decisions / explain: read the decision log (including its rotated files).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <ctime>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include <riskgate/admin/admin.h>
#include <riskgate/audit/decision_log.h>

#include "ctl.h"
#include "terminal_safe.h"

namespace riskgate::ctl {
namespace {

struct Filter {
  std::string action;
  std::string identity;
  std::string since;
  bool follow = false;
  std::size_t tail = 0;  // 0: every matching decision
  std::uint64_t since_unix_ns = 0;
};

std::uint64_t now_unix_ns()
{
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// "10m" (ago) or "2026-11-29T14:00:00Z".
std::uint64_t since_unix_ns(const std::string &text)
{
  std::tm tm{};
  const char *end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end && (*end == '\0' || std::string(end) == "Z"))
    return static_cast<std::uint64_t>(timegm(&tm)) * 1'000'000'000ull;
  const auto ms = parse_duration_ms(text);
  if (!ms)
    usage_error(fmt::format("--since {}: {}; or a UTC time, 2026-11-29T14:00:00Z", text, ms.error()));
  return now_unix_ns() - *ms * 1'000'000;
}

bool matches(const Filter &filter, const nlohmann::json &d)
{
  if (!filter.action.empty() && d.value("action", "") != filter.action)
    return false;
  if (!filter.identity.empty()) {
    const auto &id = filter.identity;
    const bool hit = d.value("source_identity_name", "") == id ||
                     d.value("destination_identity_name", "") == id ||
                     std::to_string(d.value("source_identity", 0u)) == id ||
                     std::to_string(d.value("destination_identity", 0u)) == id;
    if (!hit)
      return false;
  }
  return d.value("time_unix_ns", std::uint64_t{0}) >= filter.since_unix_ns;
}

// Calls `each` with every decision object of the log, oldest first.
template <class F>
void for_each_decision(const std::vector<std::string> &files, F &&each)
{
  for (const auto &file : files) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      auto object = nlohmann::json::parse(line, nullptr, false);
      if (!object.is_discarded() && object.is_object() && object.value("kind", "") == "decision")
        each(object);
    }
  }
}

std::string source_text(const nlohmann::json &d)
{
  const std::string name = d.value("source_identity_name", "");
  return name.empty() ? std::to_string(d.value("source_identity", 0u)) : name;
}

const std::vector<std::string> kDecisionColumns = {"TIME",    "ID",      "SERVICE", "SOURCE",
                                                   "ADDRESS", "REQUEST", "SCORE",   "ACTION"};

std::vector<std::string> decision_row(const nlohmann::json &d)
{
  std::string action = d.value("action", "");
  if (!d.value("enforced", true))
    action += " (observe)";
  return {format_unix_ns(d.value("time_unix_ns", std::uint64_t{0})),
          std::to_string(d.value("id", std::uint64_t{0})),
          d.value("service", ""),
          source_text(d),
          d.value("source_address", ""),
          d.value("method", "") + " " + d.value("route", ""),
          std::to_string(d.value("score", 0)),
          action};
}

void print_followed(const nlohmann::json &d, bool json)
{
  if (json) {
    fmt::print("{}\n", d.dump());
  } else {
    print_line(fmt::format("{}", fmt::join(decision_row(d), "  ")));
  }
  std::fflush(stdout);
}

// --follow: the agent's live stream while it runs; then (or without an agent) the lines appended to
// the active file, reopening it when it is rotated.
[[noreturn]] void follow(const std::string &path, const std::string &socket, const Filter &filter, bool json)
{
  const auto streamed = admin::stream(socket, [&](const std::string &line) {
    auto d = nlohmann::json::parse(line, nullptr, false);
    if (!d.is_discarded() && d.value("kind", "") == "decision" && matches(filter, d))
      print_followed(d, json);
    return true;
  });
  struct stat existing {};
  if (!streamed && ::stat(path.c_str(), &existing) != 0)
    fmt::print(stderr, "riskgatectl: no agent at {} and no decision log at {} yet: waiting for the log\n",
               terminal_safe(socket), terminal_safe(path));
  std::ifstream in(path);
  in.seekg(0, std::ios::end);
  struct stat opened {};
  ::stat(path.c_str(), &opened);
  std::string line;
  for (;;) {
    if (std::getline(in, line)) {
      auto d = nlohmann::json::parse(line, nullptr, false);
      if (!d.is_discarded() && d.value("kind", "") == "decision" && matches(filter, d))
        print_followed(d, json);
      continue;
    }
    in.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    struct stat now {};
    if (::stat(path.c_str(), &now) == 0 && now.st_ino != opened.st_ino) {
      in = std::ifstream(path);
      opened = now;
    }
  }
}

void add_decisions(CLI::App &app, Context &ctx)
{
  static Filter filter;
  auto *decisions = app.add_subcommand("decisions", "decisions from the audit log, newest last");
  decisions->add_option("--action", filter.action, "only this action")
      ->check(CLI::IsMember({"allow", "challenge", "limit", "block"}));
  decisions->add_option("--identity", filter.identity,
                        "only decisions from or to this identity (name or id)");
  decisions->add_option("--since", filter.since,
                        "only decisions after this: a duration ago (10m) or 2026-11-29T14:00:00Z");
  decisions->add_option("--tail", filter.tail, "only the last N matching decisions (then --follow goes on)")
      ->check(CLI::PositiveNumber);
  decisions->add_flag(
      "-f,--follow", filter.follow,
      "keep printing new decisions: live from the agent's admin socket, else from the log file");
  decisions->callback([&ctx] {
    if (!filter.since.empty())
      filter.since_unix_ns = since_unix_ns(filter.since);
    const auto files = audit::log_files(ctx.audit_log);
    if (files.empty() && !filter.follow)
      fail(fmt::format("no decision log at {}: is riskgated writing elsewhere? pass --audit-log PATH",
                       ctx.audit_log));
    std::deque<nlohmann::json> shown;  // the last --tail of them, or all
    for_each_decision(files, [&](nlohmann::json &d) {
      if (!matches(filter, d))
        return;
      shown.push_back(std::move(d));
      if (filter.tail != 0 && shown.size() > filter.tail)
        shown.pop_front();
    });
    if (filter.follow && ctx.json()) {
      for (const auto &d : shown) fmt::print("{}\n", d.dump());
    } else if (ctx.json()) {
      print_json(nlohmann::json(std::vector<nlohmann::json>(shown.begin(), shown.end())));
    } else {
      Table table(kDecisionColumns);
      for (const auto &d : shown) table.add(decision_row(d));
      table.print();
    }
    if (filter.follow) {
      std::fflush(stdout);
      follow(ctx.audit_log, ctx.admin_socket, filter, ctx.json());
    }
  });

  static std::uint64_t explain_id = 0;
  auto *explain = app.add_subcommand("explain", "why a decision was taken: its signal contributions");
  explain->add_option("ID", explain_id, "decision id (from `riskgatectl decisions`)")->required();
  explain->callback([&ctx] {
    std::optional<nlohmann::json> found;
    for_each_decision(audit::log_files(ctx.audit_log), [&](nlohmann::json &d) {
      if (d.value("id", std::uint64_t{0}) == explain_id)
        found = std::move(d);
    });
    if (!found)
      fail(
          fmt::format("decision {} is not in {} (or its rotated files): check the id with `riskgatectl "
                      "decisions`, or pass --audit-log PATH",
                      explain_id, ctx.audit_log));
    const auto &d = *found;
    if (ctx.json()) {
      print_json(d);
      return;
    }
    print_line(fmt::format("decision {} at {}", explain_id,
                           format_unix_ns(d.value("time_unix_ns", std::uint64_t{0}))));
    print_line(fmt::format("  {} {} -> {} from {} ({})", d.value("method", ""), d.value("route", ""),
                           d.value("service", ""), source_text(d), d.value("source_address", "")));
    std::string outcome = d.value("action", "");
    if (outcome == "block")
      outcome += fmt::format(" (scope {}, ttl {})", d.value("block_scope", ""),
                             format_duration_ms(d.value("block_ttl_ms", std::uint64_t{0})));
    if (!d.value("enforced", true))
      outcome += ", observe mode: not enforced";
    print_line(
        fmt::format("  score {} -> {}{}", d.value("score", 0), outcome,
                    d.value("rule", "").empty() ? "" : fmt::format(" by rule {}", d.value("rule", ""))));
    print_line(
        fmt::format("  policy {}, token {}", d.value("policy_version", ""),
                    d.value("token_fingerprint", "").empty() ? "none" : d.value("token_fingerprint", "")));
    print_line("");
    Table table({"SIGNAL", "POINTS", "EVIDENCE"});
    for (const auto &c : d.value("contributions", nlohmann::json::array()))
      table.add({c.value("signal", ""), fmt::format("{:+}", c.value("points", 0)), c.value("evidence", "")});
    table.print();
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_decisions);
