// The admin HTTP port and unix socket under clients that start a request and never finish it:
// probes still answer at once, the slow ones are closed by their deadline, open connections stay
// under the cap, and malformed or oversized requests get an answer rather than a hang or a crash.
#include <unistd.h>

#include <filesystem>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <riskgate/admin/admin.h>

#include "support/lab.h"
#include "support/slow_clients.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kHttpConnectionCap = 256;  // userspace/admin: LoopLimits::max_connections
const std::string kSlowHttpOpening = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";

std::unique_ptr<admin::HttpServer> start_http(const metrics::Registry &registry)
{
  auto server = admin::HttpServer::start("127.0.0.1:0", registry, [] { return std::string(); });
  REQUIRE_MESSAGE(server.ok(), (server.ok() ? "" : server.error()));
  return std::move(*server);
}

std::string socket_path(const std::string &name)
{
  return (std::filesystem::temp_directory_path() / fmt::format("rgt-{}-{}.sock", name, getpid())).string();
}

}  // namespace

TEST_CASE("1000 slow clients on the metrics port: /healthz and /readyz still answer within 100 ms")
{
  REQUIRE(test::raise_fd_limit(4096));
  metrics::Registry registry;
  registry.counter("hits_total", "Hits").inc();
  const auto server = start_http(registry);
  const auto port = server->port();
  test::SlowClients slow(test::loopback(port), 1000, kSlowHttpOpening);
  CHECK_MESSAGE(test::eventually([&] { return slow.connected() + slow.closed_by_server() >= 1000; }, 5000),
                "slow clients connected: ", slow.connected());

  const auto probes = test::probe_health(getpid(), port, 3s, 100ms);
  CHECK(probes.count >= 10);  // probed throughout the 3 s
  CHECK_MESSAGE(probes.failures.empty(), probes.summary());
  CHECK(probes.most_open <= kHttpConnectionCap);
  CHECK(probes.most_open >= kHttpConnectionCap / 2);  // the slow clients did hold the port
  CHECK(slow.closed_by_server() >= 1000 - kHttpConnectionCap);
  CHECK_MESSAGE(slow.longest_held() < 2500ms, "held ", slow.longest_held().count(), " ms");
}

TEST_CASE("slow clients under the cap are closed by the 2 s request deadline, whatever they trickle")
{
  metrics::Registry registry;
  const auto server = start_http(registry);
  test::SlowClients slow(test::loopback(server->port()), 50, kSlowHttpOpening, 100ms);
  CHECK(test::eventually([&] { return slow.closed_by_server() >= 50; }, 4000));
  CHECK(slow.longest_held() >= 1900ms);
  CHECK(slow.longest_held() < 2500ms);
}

TEST_CASE("the metrics port answers an oversized head with 431 and a malformed one with 400")
{
  metrics::Registry registry;
  const auto server = start_http(registry);
  const auto to = test::loopback(server->port());
  const auto oversized = test::exchange(to, "GET /healthz HTTP/1.1\r\nX: " + std::string(20000, 'a'));
  CHECK(oversized.text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  CHECK(test::exchange(to, "nonsense\r\n\r\n").text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  CHECK(test::exchange(to, "GET /healthz\r\n\r\n").text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  CHECK(test::exchange(to, "POST /healthz HTTP/1.1\r\n\r\n").text.starts_with("HTTP/1.1 405 "));
  CHECK(test::exchange(to, "GET /healthz?x HTTP/1.1\r\n\r\n").text.starts_with("HTTP/1.1 404 "));
  CHECK(test::http_get(server->port(), "/metrics?name[]=x").text.starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST_CASE("slow admin-socket clients do not hold up status; bad fields are errors, not a crash")
{
  const std::string path = socket_path("admin-slow");
  admin::Socket::Options options;
  options.path = path;
  options.status = [] { return nlohmann::json{{"agent", "up"}}; };
  options.commands["manual_unblock"] = [](const nlohmann::json &request) {
    return nlohmann::json{{"target", request.value("target", "")}};  // throws on a non-string target
  };
  auto socket = admin::Socket::start(options);
  REQUIRE_MESSAGE(socket.ok(), (socket.ok() ? "" : socket.error()));
  test::SlowClients slow(test::unix_socket(path), 20, R"({"cmd":"sta)");
  CHECK(test::eventually([&] { return slow.connected() == 20; }, 2000));

  for (int i = 0; i < 3; ++i) {
    const auto started = std::chrono::steady_clock::now();
    auto status = admin::request(path, {{"cmd", "status"}});
    CHECK(std::chrono::steady_clock::now() - started < 100ms);
    REQUIRE_MESSAGE(status.ok(), status.error());
    CHECK((*status)["agent"] == "up");
  }
  CHECK(slow.connected() == 20);  // held, not evicted: under the cap

  const auto to = test::unix_socket(path);
  CHECK(test::exchange(to, R"({"cmd":5})"
                           "\n")
            .text.starts_with(R"({"error":"unknown command)"));
  CHECK(test::exchange(to, R"({"cmd":"manual_unblock","target":5})"
                           "\n")
            .text.starts_with(R"({"error":"manual_unblock: )"));
  CHECK(test::exchange(to, std::string(20000, ' ')).text ==
        "{\"error\":\"request line over 16384 bytes\"}\n");
  CHECK(test::exchange(to, R"({"cmd":"status"})").text == "{\"agent\":\"up\"}\n");  // ended by the peer
  CHECK(admin::request(path, {{"cmd", "status"}}).ok());                            // still serving
}

TEST_CASE("the admin socket keeps at most 64 streaming clients and tells the next one so")
{
  const std::string path = socket_path("admin-streams");
  admin::Socket::Options options;
  options.path = path;
  auto socket = admin::Socket::start(options);
  REQUIRE_MESSAGE(socket.ok(), (socket.ok() ? "" : socket.error()));
  // Streams that never read: each takes a slot until a publish finds it full.
  test::SlowClients streams(test::unix_socket(path), 64, "{\"cmd\":\"stream\"}\n", 10s);
  const auto to = test::unix_socket(path);
  std::string refused;
  CHECK(test::eventually(
      [&] {
        refused = test::exchange(to, "{\"cmd\":\"stream\"}\n").text;
        return !refused.empty();
      },
      3000));
  CHECK(refused == "{\"error\":\"already 64 streaming clients\"}\n");
}
