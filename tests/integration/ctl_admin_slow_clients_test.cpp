// The real riskgated with a thousand slow clients on its metrics port and slow ones on its admin
// socket: the kubelet's probes (/healthz, /readyz) answer within 100 ms, the agent holds no more
// connections than its cap, and riskgatectl status still answers.
#include <signal.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/slow_clients.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kHttpConnectionCap = 256;  // userspace/admin: LoopLimits::max_connections

}  // namespace

TEST_CASE("riskgated under slow clients: probes answer within 100 ms and riskgatectl status answers")
{
  REQUIRE(test::raise_fd_limit(4096));
  const test::WorkDir work("rgt-admin");
  const std::string socket = work.path + "/admin.sock", log = work.path + "/riskgated.log";
  test::Process agent(
      {std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--listen", "127.0.0.1:0", "--upstream",
       "127.0.0.1:9", "--workers", "1", "--audit-log", work.path + "/decisions.jsonl", "--admin-socket",
       socket, "--admin-metrics", "127.0.0.1:0"},
      "", log);
  const auto port = test::announced_port(log, R"(metrics on 127\.0\.0\.1:0 \(port ([0-9]+)\))");
  REQUIRE_MESSAGE(port != 0, test::read_text(log));

  test::SlowClients slow_http(test::loopback(port), 1000, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  CHECK(test::eventually([&] { return slow_http.connected() + slow_http.closed_by_server() >= 1000; }, 5000));

  const auto probes = test::probe_health(agent.pid(), port, 3s, 100ms);
  CHECK_MESSAGE(probes.failures.empty(), probes.summary());
  CHECK(probes.most_open <= kHttpConnectionCap);  // counted in the agent's own fds
  CHECK(test::http_get(port, "/metrics").text.starts_with("HTTP/1.1 200 OK\r\n"));

  // Within their 2 s request deadline: they hold their connections while status is asked.
  test::SlowClients slow_admin(test::unix_socket(socket), 8, R"({"cmd":"sta)");
  CHECK(test::eventually([&] { return slow_admin.connected() == 8; }, 1000));
  const auto started = std::chrono::steady_clock::now();
  const auto status = test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl --admin-socket " + socket +
                                    " --pin-root /sys/fs/bpf/rgt-none -o json status");
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  REQUIRE_MESSAGE(status.code == 0, status.out);
  const auto parsed = nlohmann::json::parse(status.out, nullptr, false);
  REQUIRE_MESSAGE(parsed.is_object(), status.out);
  CHECK(parsed["agent"]["up"] == true);
  CHECK(parsed["agent"]["status"]["agent"] == "up");
  CHECK(slow_admin.connected() == 8);  // still holding their connections while status answered

  slow_http.stop();
  slow_admin.stop();
  agent.kill(SIGTERM);
  const auto exited = agent.wait(5000);
  REQUIRE(exited.has_value());
  CHECK(WIFEXITED(*exited));
  CHECK(WEXITSTATUS(*exited) == 0);
}
