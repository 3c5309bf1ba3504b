// riskgatectl over a decision log: audit verify, decisions, explain; their output and exit codes.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include <riskgate/audit/decision_log.h>

#include "support/capture.h"

namespace fs = std::filesystem;
using namespace riskgate;

namespace {

test::Captured ctl(const std::string &args)
{
  return test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl " + args);
}

// riskgatectl ARGS exits with `code`, saying `says` somewhere in what it prints.
void check_exit(const std::string &args, int code, const std::string &says)
{
  const auto ran = ctl(args);
  INFO(ran.out);
  CHECK(ran.code == code);
  CHECK(ran.out.find(says) != std::string::npos);
}

struct LogFixture {
  fs::path dir;
  std::string path;
  LogFixture()
  {
    dir = fs::temp_directory_path() / ("rgt-ctl-" + std::to_string(getpid()));
    fs::create_directories(dir);
    path = (dir / "decisions.jsonl").string();
    audit::LogOptions options;
    options.path = path;
    auto log = audit::DecisionLog::open(options);
    REQUIRE(log.ok());
    for (std::uint64_t id = 1; id <= 4; ++id) {
      Decision d;
      d.id = 100 + id;
      d.time_unix_ns = static_cast<std::uint64_t>(std::time(nullptr)) * 1'000'000'000ull;
      d.service = "orders";
      d.source_identity = static_cast<IdentityId>(id);
      d.source_identity_name = id == 4 ? "batch" : "frontend";
      d.method = "POST";
      d.route = "/orders";
      d.score = id == 4 ? 95 : 10;
      d.action = id == 4 ? Action::block : Action::allow;
      d.block_scope = BlockScope::identity;
      d.block_ttl_ms = 600'000;
      if (id == 4)
        d.contributions = {{"roaming", 60, "token seen from 2 workloads"}, {"rate", 35, "12x baseline"}};
      (*log)->record(std::move(d));
    }
  }
  ~LogFixture() { fs::remove_all(dir); }
  std::string flags() const { return "--audit-log " + path; }
};

}  // namespace

TEST_CASE("audit verify: 0 on a whole chain, 1 naming the line when tampered")
{
  LogFixture log;
  auto ok = ctl("audit verify " + log.path);
  CHECK(ok.code == 0);
  CHECK(ok.out.find("ok: 4 lines") != std::string::npos);
  CHECK(ctl(log.flags() + " audit verify").code == 0);

  auto lines = test::read_lines(log.path);
  lines.erase(lines.begin() + 1);
  test::write_lines(log.path, lines);
  auto broken = ctl("audit verify " + log.path);
  CHECK(broken.code == 1);
  CHECK(broken.out.find(log.path + ":2: 1 line(s) removed") != std::string::npos);
  auto json = ctl("-o json audit verify " + log.path);
  CHECK(json.code == 1);
  CHECK(json.out.find("\"ok\": false") != std::string::npos);
}

TEST_CASE("decisions filters the log and explain shows contributions")
{
  LogFixture log;
  auto all = ctl(log.flags() + " decisions");
  CHECK(all.code == 0);
  CHECK(all.out.find("TIME") == 0);
  auto blocks = ctl(log.flags() + " -o json decisions --action block --since 1h");
  REQUIRE(blocks.code == 0);
  const auto parsed = nlohmann::json::parse(blocks.out);
  REQUIRE(parsed.size() == 1);
  CHECK(parsed[0]["id"] == 104);
  auto batch = nlohmann::json::parse(ctl(log.flags() + " -o json decisions --identity batch").out);
  CHECK(batch.size() == 1);
  auto recent = nlohmann::json::parse(ctl(log.flags() + " -o json decisions --since 1h30m").out);
  CHECK(recent.size() == 4);
  auto future =
      nlohmann::json::parse(ctl(log.flags() + " -o json decisions --since 2099-01-01T00:00:00Z").out);
  CHECK(future.empty());

  auto explain = ctl(log.flags() + " explain 104");
  CHECK(explain.code == 0);
  CHECK(explain.out.find("score 95 -> block (scope identity, ttl 10m)") != std::string::npos);
  CHECK(explain.out.find("roaming  +60     token seen from 2 workloads") != std::string::npos);

  check_exit(log.flags() + " explain 999", 1, "decision 999 is not in");
}

TEST_CASE("decisions --tail shows the newest matching ones; --follow says when there is nothing yet")
{
  LogFixture log;
  const auto last_two = nlohmann::json::parse(ctl(log.flags() + " decisions -o json --tail 2").out);
  REQUIRE(last_two.size() == 2);
  CHECK(last_two[0]["id"] == 103);
  CHECK(last_two[1]["id"] == 104);
  const auto frontend =
      nlohmann::json::parse(ctl(log.flags() + " decisions -o json --identity frontend --tail 1").out);
  REQUIRE(frontend.size() == 1);
  CHECK(frontend[0]["id"] == 103);  // the tail of what matched, not of the whole log
  CHECK(ctl(log.flags() + " decisions --tail 0").code == 2);

  const std::string none = (log.dir / "none").string();
  const auto waiting = test::capture("timeout 1 " + std::string(RG_BINARY_DIR) +
                                     "/riskgatectl decisions --follow --audit-log " + none +
                                     ".jsonl --admin-socket " + none + ".sock");
  CHECK(waiting.code == 124);  // still waiting when timeout stopped it
  CHECK(waiting.out.find("no agent at " + none + ".sock and no decision log at " + none + ".jsonl yet") !=
        std::string::npos);
}

TEST_CASE("usage errors (a value the option cannot take too) exit 2, failures exit 1 with what to do")
{
  LogFixture log;
  CHECK(ctl("explain").code == 2);
  CHECK(ctl("decisions --action maybe").code == 2);
  CHECK(ctl("nonsense").code == 2);
  CHECK(ctl("--help").code == 0);
  check_exit(log.flags() + " decisions --since yesterday", 2,
             "--since yesterday: 'yesterday' is not a duration");
  check_exit(log.flags() + " decisions --since 90", 2,
             "--since 90: '90' is not a duration: 90 has no unit; write 90s, 90m, 90h or 90d; or a UTC time");
  check_exit("--audit-log /nonexistent/rgt/decisions.jsonl decisions", 1, "pass --audit-log PATH");
}
