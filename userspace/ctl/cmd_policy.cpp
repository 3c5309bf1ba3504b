// riskgatectl policy check PATH...: validates policy sets the way riskgated loads them. Each PATH is
// one set: a directory (every *.yaml / *.yml in it, references resolved across its files) or a
// single file. Every error is printed as file:line:column: message; any error exits 1.
#include <fmt/format.h>

#include <riskgate/policy/policy.h>

#include "ctl.h"

namespace riskgate::ctl {
namespace {

struct PolicyArgs {
  std::vector<std::string> paths;
};

std::string summary(const policy::PolicySet &set)
{
  std::string risk = "built-in defaults";
  if (!set.risk_policies.empty()) {
    const auto &p = set.risk_policies.front();
    const std::string fast_path =
        p.fast_path.empty() ? std::string() : fmt::format(", {} fast-path pairs", p.fast_path.size());
    risk = fmt::format("RiskPolicy {} ({}, {} rules{})", p.name,
                       p.mode == policy::Mode::enforce ? "enforce" : "observe", p.rules.size(), fast_path);
  }
  return fmt::format("version {}: {} identities, {} services, {}", set.version, set.identities.size(),
                     set.services.size(), risk);
}

void add_policy(CLI::App &app, Context &ctx)
{
  auto *group = app.add_subcommand("policy", "policy documents");
  group->require_subcommand(1);
  auto *check = group->add_subcommand("check", "validate policy sets: a directory or a single file each");
  static PolicyArgs args;
  check->add_option("PATH", args.paths, "policy directory or file")->required();
  check->callback([&ctx] {
    std::size_t errors = 0;
    nlohmann::json results = nlohmann::json::array();
    for (const auto &path : args.paths) {
      const auto loaded = policy::load_path(path);
      errors += loaded.diagnostics.size();
      if (ctx.json()) {
        nlohmann::json diagnostics = nlohmann::json::array();
        for (const auto &d : loaded.diagnostics)
          diagnostics.push_back({{"file", d.where.file},
                                 {"line", d.where.line},
                                 {"column", d.where.column},
                                 {"message", d.message}});
        nlohmann::json result = {{"path", path}, {"ok", loaded.ok()}, {"errors", diagnostics}};
        if (loaded.ok()) {
          result["version"] = loaded.set->version;
          result["files"] = loaded.set->files;
          result["identities"] = loaded.set->identities.size();
          result["services"] = loaded.set->services.size();
          nlohmann::json fast_path = nlohmann::json::array();
          for (const auto &risk_policy : loaded.set->risk_policies)
            for (const auto &pair : risk_policy.fast_path)
              fast_path.push_back({{"from", pair.from}, {"to", pair.to}});
          result["fast_path"] = std::move(fast_path);
        }
        results.push_back(std::move(result));
        continue;
      }
      for (const auto &d : loaded.diagnostics) print_line(policy::to_string(d));
      if (loaded.ok())
        print_line(fmt::format("{}: ok, {}", path, summary(*loaded.set)));
    }
    if (ctx.json())
      print_json(results);
    if (errors)
      fail(fmt::format("{} error(s): riskgated would refuse this policy and keep running the one it has",
                       errors));
  });
}

}  // namespace
}  // namespace riskgate::ctl

RG_CTL_COMMAND_GROUP(riskgate::ctl::add_policy);
