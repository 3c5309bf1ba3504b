// riskgatectl and riskgated as an operator types them: global flags before or after the
// subcommand and in every subcommand's help, an unknown command with a suggestion (exit 2), and a
// version that names the commit and the BPF objects actually embedded (their SHA-256 is the one of
// the objects the build compiled).
#include <doctest/doctest.h>

#include <signal.h>

#include <regex>
#include <string>

#include <fmt/format.h>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;

namespace {

test::Captured run(const std::string &binary, const std::string &args)
{
  return test::capture(std::string(RG_BINARY_DIR) + "/" + binary + " " + args);
}

std::string sha256_of(const std::string &path)
{
  const auto out = test::capture("sha256sum " + path);
  REQUIRE(out.code == 0);
  return out.out.substr(0, 64);
}

}  // namespace

TEST_CASE("global flags are accepted after the subcommand and listed in its help")
{
  const std::string missing = "/nonexistent-rgt-pins";
  const auto after = run("riskgatectl", "blocks -o json --pin-root " + missing);
  const auto before = run("riskgatectl", "-o json --pin-root " + missing + " blocks");
  CHECK(after.code == 1);
  CHECK(after.out == before.out);
  CHECK(after.out.find(missing + " does not exist") != std::string::npos);
  for (const char *sub : {"blocks --help", "audit verify --help", "decisions --help"}) {
    const auto help = run("riskgatectl", sub);
    CHECK(help.code == 0);
    CHECK_MESSAGE(help.out.find("-o,--output") != std::string::npos, sub);
    CHECK_MESSAGE(help.out.find("--pin-root") != std::string::npos, sub);
    CHECK_MESSAGE(help.out.find("--admin-socket") != std::string::npos, sub);
  }
}

TEST_CASE("an unknown command is named, with a suggestion, and exits 2")
{
  const auto typo = run("riskgatectl", "--pin-root /x blokcs");
  CHECK(typo.code == 2);
  CHECK(typo.out.find("unknown command 'blokcs' (did you mean 'blocks'?)") != std::string::npos);
  const auto nonsense = run("riskgatectl", "zzzz");
  CHECK(nonsense.code == 2);
  CHECK(nonsense.out.find("unknown command 'zzzz'") != std::string::npos);
}

TEST_CASE("both binaries say which commit and which BPF objects they carry")
{
  const std::regex first_line(R"(^(riskgatectl|riskgated) [0-9]+\.[0-9]+\.[0-9]+\+[0-9a-f]{7,}(-dirty)?\n)");
  for (const auto &[binary, args] :
       {std::pair{"riskgatectl", "--version"}, std::pair{"riskgatectl", "version"},
        std::pair{"riskgated", "--version"}, std::pair{"riskgated", "version"}}) {
    const auto out = run(binary, args);
    CHECK(out.code == 0);
    CHECK_MESSAGE(std::regex_search(out.out, first_line), binary, " ", args, ": ", out.out);
    for (const char *object : {"xdp_gate", "sock_gate", "sockops_tag", "msg_gate"}) {
      const std::string line = std::string("bpf ") + object + " sha256:" +
                               sha256_of(std::string(RG_BINARY_DIR) + "/bpf/" + object + ".bpf.o") + "\n";
      CHECK_MESSAGE(out.out.find(line) != std::string::npos, binary, " ", args, " lacks ", line);
    }
  }
  const auto json = run("riskgatectl", "version -o json");
  CHECK(json.code == 0);
  CHECK(json.out.find("\"bpf_objects\"") != std::string::npos);
}

TEST_CASE("status reads as text, and /metrics has its alerting series and build info from the start")
{
  const test::WorkDir dir("rgt-status");  // before the agent: removed after it is stopped
  const std::string &work = dir.path;
  const std::string socket = work + "/admin.sock";
  const std::uint16_t metrics_port = [] {
    const test::LoopbackListener probe(1);  // a free port, released for riskgated to take
    return probe.port();
  }();
  test::Process agent(
      {std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--listen", "127.0.0.1:0", "--upstream",
       "127.0.0.1:9", "--workers", "1", "--admin-socket", socket, "--admin-metrics",
       "127.0.0.1:" + std::to_string(metrics_port), "--audit-log", work + "/decisions.jsonl"},
      "", work + "/riskgated.log");
  test::Captured status;
  REQUIRE(test::eventually(
      [&] {
        status = run("riskgatectl", "--admin-socket " + socket + " --pin-root " + work + "/no-pins status");
        return status.code == 0 && status.out.find("agent: up") != std::string::npos;
      },
      5000));
  INFO(status.out);
  CHECK(status.out.find("  decisions: allow 0, block 0, challenge 0, limit 0, unenforced 0\n") !=
        std::string::npos);
  CHECK(status.out.find("  listeners:\n    port ") != std::string::npos);
  CHECK(status.out.find("service gateway, transparent false\n") != std::string::npos);
  CHECK(status.out.find('{') == std::string::npos);
  CHECK(status.out.find('"') == std::string::npos);

  const auto scraped = test::capture(fmt::format("curl -s http://127.0.0.1:{}/metrics", metrics_port));
  CHECK(scraped.out.find("riskgate_policy_reloads_total{result=\"error\"} 0\n") != std::string::npos);
  CHECK(scraped.out.find("riskgate_build_info{version=\"0.") != std::string::npos);
  CHECK(scraped.out.find("\nprocess_open_fds ") != std::string::npos);
  agent.kill(SIGTERM);
  CHECK(agent.wait(5000).has_value());
}
