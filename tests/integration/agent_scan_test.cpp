// A client that keeps its normal traffic running while it probes endpoints it never called is
// refused within 10 new endpoints, and its normal requests see only 200s until then; another that
// adds three endpoints (a deploy) is not refused. The real riskgated (--no-kernel: clients are
// unknown peers told apart by source address, 127.0.0.1 and 127.0.0.2), a real policy directory,
// real curl and a real nginx upstream (200 for every path, 404 on /status/404: the 404 probes are
// new methods on that route).
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;
using Clock = std::chrono::steady_clock;

namespace {

std::string status_of(std::uint16_t port, const char *method, const std::string &path,
                      const char *source = "127.0.0.1")
{
  return test::run_command(
      fmt::format("curl -s -o /dev/null --interface {} -X {} -w '%{{http_code}}' http://127.0.0.1:{}{}",
                  source, method, port, path));
}

// The Service on port {0} in front of upstream {1}; the default policy's signals, but a learning
// period a test can wait out.
constexpr const char *kPolicy = R"(apiVersion: riskgate.dev/v1
kind: Service
metadata: {{name: orders}}
spec: {{listen: "127.0.0.1:{0}", upstream: "{1}"}}
---
apiVersion: riskgate.dev/v1
kind: RiskPolicy
metadata: {{name: default}}
spec:
  signals:
    novelty: {{learn: 3s}}
)";

// Whether riskgated answers HTTP on `port` within 5 s (curl's "000": no answer).
bool serving(std::uint16_t port)
{
  return test::eventually(
      [&] {
        try {
          return status_of(port, "GET", "/catalog/0") != "000";
        } catch (const std::exception &) {  // curl fails while nothing listens
          return false;
        }
      },
      5000);
}

struct Answer {
  Clock::time_point received;
  std::string status;
};

// The client's normal traffic on its two known routes, as fast as curl goes, until stopped.
class NormalTraffic {
 public:
  NormalTraffic(std::uint16_t port, const char *source)
      : thread_([this, port, source] {
          for (int i = 0; !stop_; ++i) {
            const std::string status =
                status_of(port, "GET", fmt::format("/{}/{}", i % 2 ? "orders" : "catalog", i), source);
            const std::lock_guard lock(mutex_);
            answers_.push_back({Clock::now(), status});
          }
        })
  {
  }
  ~NormalTraffic() { stop(); }
  void stop()
  {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  std::vector<Answer> answers()
  {
    const std::lock_guard lock(mutex_);
    return answers_;
  }

 private:
  std::atomic<bool> stop_ = false;
  std::mutex mutex_;
  std::vector<Answer> answers_;
  std::thread thread_;
};

struct Probe {
  const char *method;
  const char *path;
};
// Mostly 404s, some 200s, every one an endpoint (method, route template) the client never called.
constexpr Probe kProbes[] = {{"PUT", "/status/404"},     {"DELETE", "/status/404"}, {"GET", "/admin"},
                             {"PATCH", "/status/404"},   {"POST", "/status/404"},   {"GET", "/.env"},
                             {"OPTIONS", "/status/404"}, {"GET", "/status/404"},    {"GET", "/server-status"},
                             {"GET", "/console"},        {"GET", "/metrics"},       {"GET", "/swagger.json"}};

}  // namespace

TEST_CASE("riskgated refuses a probe within 10 new endpoints while the prober's normal traffic gets 200s")
{
  test::NginxUpstream nginx;
  const test::WorkDir dir("rgt-scan");  // before the agent: removed after it is stopped
  const std::string &work = dir.path;
  const std::uint16_t port = test::LoopbackListener(1).port();  // free now, released again
  std::ofstream(work + "/policies/orders.yaml") << fmt::format(kPolicy, port, nginx.address());
  const std::string log = work + "/riskgated.log";
  const std::vector<std::string> argv = {std::string(RG_BINARY_DIR) + "/riskgated",
                                         "--no-kernel",
                                         "--workers=2",
                                         "--policy-dir=" + work + "/policies",
                                         "--audit-log=" + work + "/decisions.jsonl",
                                         "--admin-socket=off",
                                         "--admin-metrics=off"};
  test::Process agent(argv, "", log);
  REQUIRE_MESSAGE(serving(port), test::read_text(log));

  NormalTraffic normal(port, "127.0.0.1");
  NormalTraffic deployed(port, "127.0.0.2");
  std::this_thread::sleep_for(std::chrono::seconds(4));  // past the learning period
  // The deploy: three new endpoints at once, the first two failing at first (the server is not
  // rolled out yet), then working; answered by the upstream every time.
  struct Added {
    const char *method, *first, *later;  // the same route template
  };
  const Added added[] = {
      {"PUT", "/status/404", "/status/200"}, {"DELETE", "/status/404", "/status/200"}, {"GET", "/v2", "/v2"}};
  for (int round = 0; round < 3; ++round)
    for (const Added &e : added) {
      const std::string status = status_of(port, e.method, round == 0 ? e.first : e.later, "127.0.0.2");
      CHECK_MESSAGE((status == "200" || status == "404"),
                    fmt::format("{} {}: {}", e.method, e.first, status));
    }
  int refused_at = 0;
  Clock::time_point refused_sent;
  for (int i = 0; i < static_cast<int>(std::size(kProbes)) && refused_at == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto sent = Clock::now();
    const std::string status = status_of(port, kProbes[i].method, kProbes[i].path);
    if (status == "403" || status == "429") {
      refused_at = i + 1;
      refused_sent = sent;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  normal.stop();
  deployed.stop();
  for (const Answer &a : deployed.answers()) CHECK(a.status == "200");
  CHECK(refused_at > 0);
  CHECK(refused_at <= 10);

  // Answered before the refused probe was sent: 200s only.
  int before = 0;
  for (const Answer &a : normal.answers())
    if (a.received < refused_sent) {
      ++before;
      CHECK(a.status == "200");
    }
  CHECK(before > 40);  // normal traffic ran throughout, more of it than probes
  // Decided before the refusal (decision ids increase; the log's order is the workers'): every
  // normal request allowed, with no points.
  std::vector<nlohmann::json> decisions;
  std::istringstream log_lines(test::read_text(work + "/decisions.jsonl"));
  for (std::string line; std::getline(log_lines, line);)
    if (auto d = nlohmann::json::parse(line); d.value("kind", "") == "decision")
      decisions.push_back(std::move(d));
  const auto is_normal = [](const nlohmann::json &d) {
    return d["method"] == "GET" && (d["route"] == "/orders/{id}" || d["route"] == "/catalog/{id}");
  };
  std::uint64_t refusal = UINT64_MAX;
  for (const auto &d : decisions)
    if (!is_normal(d) && (d["action"] == "block" || d["action"] == "limit")) {
      refusal = std::min(refusal, d["id"].get<std::uint64_t>());
      CHECK(d.dump().find("(scanning)") != std::string::npos);
    }
  REQUIRE(refusal != UINT64_MAX);
  int normal_allowed = 0;
  for (const auto &d : decisions)
    if (is_normal(d) && d["id"].get<std::uint64_t>() < refusal) {
      CHECK(d["action"] == "allow");
      CHECK(d["score"] == 0);
      ++normal_allowed;
    }
  CHECK(normal_allowed >= before);

  agent.kill(SIGTERM);
  CHECK(agent.wait(5000).has_value());
}
