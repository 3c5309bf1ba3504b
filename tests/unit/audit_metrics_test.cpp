// Metrics registry, Prometheus exposition, the admin HTTP port and the admin unix socket.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <riskgate/admin/admin.h>
#include <riskgate/audit/decision_log.h>
#include <riskgate/common/version.h>

#include "support/slow_clients.h"

using namespace riskgate;

namespace {

bool contains(const std::string &text, const std::string &part)
{
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("exposition: labelled counters, cumulative histogram buckets, escaped label values")
{
  metrics::Registry registry;
  auto &requests = registry.counter_family("riskgate_requests_total", "Requests", {"service", "action"});
  requests.with({"orders", "allow"}).inc(3);
  requests.with({"orders", "block"}).inc();
  requests.with({"we\"ird\\", "allow"}).inc();
  auto &h = registry.histogram_family("lat_seconds", "Latency", {0.1, 1}).get();
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  registry.gauge("up", "Up").set(1);
  const auto text = registry.expose();
  CHECK(contains(text, "# HELP riskgate_requests_total Requests\n# TYPE riskgate_requests_total counter\n"));
  CHECK(contains(text, "riskgate_requests_total{service=\"orders\",action=\"allow\"} 3\n"));
  CHECK(contains(text, "riskgate_requests_total{service=\"orders\",action=\"block\"} 1\n"));
  CHECK(contains(text, "riskgate_requests_total{service=\"we\\\"ird\\\\\",action=\"allow\"} 1\n"));
  CHECK(contains(text,
                 "lat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"1\"} 2\n"
                 "lat_seconds_bucket{le=\"+Inf\"} 3\nlat_seconds_sum 5.55\nlat_seconds_count 3\n"));
  CHECK(contains(text, "# TYPE up gauge\nup 1\n"));
}

TEST_CASE("counters are exact under concurrent increments, and cardinality is capped")
{
  metrics::Registry registry;
  auto &family = registry.counter_family("c_total", "C", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) family.with({"x"}).inc();
    });
  for (auto &thread : threads) thread.join();
  CHECK(family.with({"x"}).value() == 400000);

  for (std::size_t i = 0; i < metrics::Family<metrics::Counter>::kMaxSeries + 10; ++i)
    family.with({std::to_string(i) + "v"}).inc();
  CHECK(family.with({"other"}).value() == 11);  // "x" took one of the slots
  CHECK(contains(registry.expose(), "c_total{k=\"other\"} 11\n"));
}

TEST_CASE("decision metrics count requests, signals and the audit log's drops")
{
  metrics::Registry registry;
  audit::DecisionMetrics m(registry);
  Decision d;
  d.service = "orders";
  d.action = Action::limit;
  d.score = 65;
  d.evaluation_ns = 3000;
  d.contributions = {{"rate", 40, ""}, {"novelty", 0, ""}, {"roaming", 25, ""}};
  m.observe(d);
  m.policy_loaded("abc123", true);
  m.policy_loaded("broken", false);
  m.upstream_health("127.0.0.1:9000", false);
  const auto text = registry.expose();
  CHECK(contains(text, "riskgate_requests_total{service=\"orders\",action=\"limit\",mode=\"enforce\"} 1\n"));
  CHECK(contains(text, "riskgate_signal_firings_total{signal=\"rate\"} 1\n"));
  CHECK_FALSE(contains(text, "signal=\"novelty\""));
  CHECK(contains(text, "riskgate_risk_score_bucket{le=\"70\"} 1\n"));
  CHECK(contains(text, "riskgate_decision_latency_seconds_bucket{le=\"4e-06\"} 1\n"));
  CHECK(contains(text, "riskgate_policy_info{version=\"abc123\"} 1\n"));
  CHECK(contains(text, "riskgate_policy_reloads_total{result=\"error\"} 1\n"));
  CHECK(contains(text, "riskgate_upstream_up{upstream=\"127.0.0.1:9000\"} 0\n"));
}

TEST_CASE("alerting series exist at zero from the start; observed decisions are told apart")
{
  metrics::Registry registry;
  audit::DecisionMetrics m(registry);
  auto text = registry.expose();
  CHECK(contains(text, "riskgate_policy_reloads_total{result=\"error\"} 0\n"));
  CHECK(contains(text, "riskgate_policy_reloads_total{result=\"ok\"} 0\n"));
  Decision d;
  d.service = "orders";
  d.action = Action::block;
  d.enforced = false;
  m.observe(d);
  text = registry.expose();
  CHECK(contains(text, "riskgate_requests_total{service=\"orders\",action=\"block\",mode=\"observe\"} 1\n"));
}

TEST_CASE("the build and the process describe themselves")
{
  metrics::Registry registry;
  metrics::watch_process(registry);
  const auto text = registry.expose();
  CHECK(contains(text, std::string("riskgate_build_info{version=\"") + version() + "\"} 1\n"));
  const auto value_of = [&text](const std::string &name) {
    const auto at = text.find("\n" + name + " ");
    REQUIRE_MESSAGE(at != std::string::npos, name);
    return std::stod(text.substr(at + name.size() + 2));
  };
  CHECK(value_of("process_resident_memory_bytes") > 1e6);
  CHECK(value_of("process_open_fds") >= 3);
  const double started = value_of("process_start_time_seconds");
  CHECK(started > static_cast<double>(std::time(nullptr)) - 600);
  CHECK(started <= static_cast<double>(std::time(nullptr)) + 1);
}

TEST_CASE("the admin HTTP port serves /metrics and /healthz, 404 otherwise")
{
  metrics::Registry registry;
  registry.counter("hits_total", "Hits").inc(7);
  auto server = admin::HttpServer::start("127.0.0.1:0", registry);
  REQUIRE_MESSAGE(server.ok(), (server.ok() ? "" : server.error()));
  const auto port = (*server)->port();
  const auto metrics = test::http_get(port, "/metrics").text;
  CHECK(metrics.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(metrics, "Content-Type: text/plain; version=0.0.4"));
  CHECK(contains(metrics, "\r\n\r\n# HELP hits_total Hits\n# TYPE hits_total counter\nhits_total 7\n"));
  CHECK(contains(test::http_get(port, "/healthz").text, "200 OK"));
  CHECK(contains(test::http_get(port, "/nope").text, "404 Not Found"));
  CHECK(contains(test::http_get(port, "/readyz").text, "200 OK"));

  std::string reason = "starting";
  auto gated = admin::HttpServer::start("127.0.0.1:0", registry, [&] { return reason; });
  REQUIRE(gated.ok());
  const auto not_ready = test::http_get((*gated)->port(), "/readyz").text;
  CHECK(not_ready.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
  CHECK(contains(not_ready, "\r\n\r\nstarting\n"));
  reason.clear();
  CHECK(contains(test::http_get((*gated)->port(), "/readyz").text, "200 OK"));
  CHECK_FALSE(admin::HttpServer::start("localhost:x", registry).ok());
}

TEST_CASE("the admin socket is 0600 and answers status, explain and a live stream")
{
  const std::string path =
      (std::filesystem::temp_directory_path() / ("rgt-admin-" + std::to_string(getpid()) + ".sock")).string();
  CHECK_FALSE(admin::request(path, {{"cmd", "status"}}).ok());  // agent down: a clear error

  admin::Socket::Options options;
  options.path = path;
  options.status = [] { return nlohmann::json{{"policy_version", "v7"}}; };
  auto socket = admin::Socket::start(options);
  REQUIRE_MESSAGE(socket.ok(), (socket.ok() ? "" : socket.error()));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(admin::Socket::start(options).ok());  // a second agent on the same socket

  auto status = admin::request(path, {{"cmd", "status"}});
  REQUIRE(status.ok());
  CHECK((*status)["policy_version"] == "v7");

  std::vector<std::string> streamed;  // the reader's; read here only after it is joined
  std::atomic<std::size_t> lines{0};
  std::thread reader([&] {
    auto done = admin::stream(path, [&](const std::string &line) {
      streamed.push_back(line);
      lines.store(streamed.size());
      return streamed.size() < 2;
    });
    CHECK(done.ok());
  });
  // The stream subscribes asynchronously: publish until the reader has both lines.
  for (int i = 0; i < 200 && lines.load() < 2; ++i) {
    (*socket)->publish(R"({"kind":"decision","id":41})");
    (*socket)->publish(R"({"kind":"decision","id":42})");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  reader.join();
  REQUIRE(streamed.size() == 2);
  CHECK(contains(streamed[0] + streamed[1], "\"id\":4"));

  auto explained = admin::request(path, {{"cmd", "explain"}, {"id", 42}});
  REQUIRE(explained.ok());
  CHECK((*explained)["id"] == 42);
  auto missing = admin::request(path, {{"cmd", "explain"}, {"id", 9}});
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error(), "not among"));
  CHECK_FALSE(admin::request(path, {{"cmd", "reboot"}}).ok());
  socket = make_error("stopped");
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("explain keeps the newest recent_decisions lines and names how many it keeps")
{
  const std::string path =
      (std::filesystem::temp_directory_path() / ("rgt-admin-ring-" + std::to_string(getpid()) + ".sock"))
          .string();
  admin::Socket::Options options;
  options.path = path;
  options.recent_decisions = 3;
  auto socket = admin::Socket::start(options);
  REQUIRE_MESSAGE(socket.ok(), (socket.ok() ? "" : socket.error()));
  for (int id = 1; id <= 7; ++id) (*socket)->publish(fmt::format(R"({{"kind":"decision","id":{}}})", id));
  for (int id = 5; id <= 7; ++id) {
    auto explained = admin::request(path, {{"cmd", "explain"}, {"id", id}});
    REQUIRE_MESSAGE(explained.ok(), (explained.ok() ? "" : explained.error()));
    CHECK((*explained)["id"] == id);
  }
  auto evicted = admin::request(path, {{"cmd", "explain"}, {"id", 4}});
  REQUIRE_FALSE(evicted.ok());
  CHECK(contains(evicted.error(), "not among the 3 most recent"));
}
