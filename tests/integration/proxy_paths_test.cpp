// Canonical paths end to end: riskgated, with a policy whose rule denies /admin/*, in front of a
// Node.js upstream that echoes what it received. Every other spelling of /admin is refused (403 by
// the rule, 400 where the proxy refuses the spelling itself), other paths pass, and the upstream
// receives exactly the canonical paths the rule judged, while an allowed client's keep-alive
// traffic runs on the same workers.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

// Only the rule decides: the signals that could score repeated refusals from one address are off.
constexpr const char *kPolicy = R"(apiVersion: riskgate.dev/v1
kind: RiskPolicy
metadata: {name: default}
spec:
  signals:
    rate: {enabled: false}
    novelty: {enabled: false}
    failures: {enabled: false}
  rules:
    - {name: no-admin, deny: {routes: ["/admin/*"]}}
)";

struct Answer {
  int status = 0;
  std::string body;
};

Answer parse_answer(const std::string &raw)
{
  Answer a;
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos)
    return a;
  a.status = std::stoi(raw.substr(9, 3));
  a.body = raw.substr(head_end + 4);
  return a;
}

Answer get(std::uint16_t port, const std::string &target)
{
  return parse_answer(raw_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: svc\r\n\r\n"));
}

// One keep-alive connection asking GET after GET, each answer read by its Content-Length.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))
  {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{3, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
      throw std::runtime_error("keep-alive client: connect failed");
  }
  ~KeepAliveClient() { ::close(fd_); }
  KeepAliveClient(const KeepAliveClient &) = delete;
  KeepAliveClient &operator=(const KeepAliveClient &) = delete;

  Answer get(const std::string &target)
  {
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: svc\r\n\r\n";
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
      return {};
    std::string raw;
    char buf[4096];
    for (;;) {
      const auto head_end = raw.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto length_at = raw.find("Content-Length: ");
        if (length_at != std::string::npos && length_at < head_end &&
            raw.size() >= head_end + 4 + std::stoul(raw.substr(length_at + 16)))
          return parse_answer(raw);
      }
      const auto got = ::recv(fd_, buf, sizeof buf, 0);
      if (got <= 0)
        return {};
      raw.append(buf, static_cast<std::size_t>(got));
    }
  }

 private:
  int fd_;
};

std::string echoed_url(const Answer &a)
{
  const auto echo = nlohmann::json::parse(a.body, nullptr, false);
  return echo.is_object() && echo.contains("url") ? echo["url"].get<std::string>() : "";
}

}  // namespace

TEST_CASE("no spelling of a denied path gets around the rule; the upstream receives the canonical path")
{
  const std::string work = "/tmp/" + unique_name("rgt-paths");
  std::filesystem::create_directories(work + "/policies");
  std::ofstream(work + "/policies/risk.yaml") << kPolicy;
  const std::string log = work + "/riskgated.log";
  NodeEchoServer node;
  const std::uint16_t port = free_port();
  Process agent({std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--listen",
                 "127.0.0.1:" + std::to_string(port), "--upstream", node.address(), "--workers", "2",
                 "--policy-dir", work + "/policies", "--audit-log", work + "/decisions.jsonl",
                 "--admin-socket", work + "/admin.sock", "--admin-metrics", "off"},
                "", log);
  REQUIRE_MESSAGE(wait_for_port(port, 10000), read_text(log));

  // The allowed client, alongside the attacker: a spelling of its own path that is canonical
  // only after decoding and merging, on one connection whose buffers serve every request.
  std::atomic<bool> attacking{true};
  int client_answers = 0, client_wrong = 0;
  std::thread client([&] {
    KeepAliveClient c(port);
    for (int n = 0; attacking || n < 20; ++n) {
      const Answer a = c.get("/client//%6Eews/./" + std::to_string(n) + "?q=%2e%2e");
      ++client_answers;
      client_wrong +=
          a.status == 200 && echoed_url(a) == "/client/news/" + std::to_string(n) + "?q=%2e%2e" ? 0 : 1;
    }
  });

  for (const char *denied :
       {"/admin/users", "/admin", "/admin/", "/%61dmin/users", "/%61%64%6D%69%6E", "//admin/users",
        "/admin//users", "/x/../admin/users", "/./admin/users", "/public/%2e%2e/admin/users",
        "/public/.%2E/admin?x=1", "/admin/./users/", "///%61dmin//%2e/users"}) {
    const std::string target = denied;
    CAPTURE(target);
    const Answer a = get(port, denied);
    CHECK(a.status == 403);
    CHECK(a.body.find(R"("error":"Forbidden")") != std::string::npos);
    CHECK(a.body.find(R"("decision_id":null)") == std::string::npos);  // the rule's answer, not the proxy's
  }
  const std::pair<const char *, const char *> refused[] = {
      {"/admin%2Fusers", "encoded slash or backslash in the path"},
      {"/public%2F..%2Fadmin", "encoded slash or backslash in the path"},
      {"/admin%5cusers", "encoded slash or backslash in the path"},
      {"/admin\\users", "backslash in the path"},
      {"/admin%00/users", "encoded NUL in the path"},
      {"/%zzadmin", "invalid percent-encoding in the path"},
      {"/..", "path climbs above the root"},
      {"/../admin/users", "path climbs above the root"},
      {"/public/%2e%2e/%2e%2e/admin", "path climbs above the root"},
  };
  for (const auto &[spelling, reason] : refused) {
    const std::string target = spelling;
    CAPTURE(target);
    const Answer a = get(port, target);
    CHECK(a.status == 400);
    CHECK(a.body.find(R"("decision_id":null)") != std::string::npos);  // refused before the hook decided
    CHECK(a.body.find(std::string(R"("reason":")") + reason + '"') != std::string::npos);
  }
  // Allowed, each forwarded as its canonical target; /ADMIN is another resource (paths are
  // case-sensitive), and reaches the upstream as it was sent.
  const std::pair<const char *, const char *> allowed[] = {
      {"/public/x", "/public/x"},
      {"/admin/%2e%2e/secret", "/secret"},
      {"/ADMIN/users", "/ADMIN/users"},
      {"/administrator", "/administrator"},
      {"/%7Epublic//x/./y?q=%2e%2e/../admin", "/~public/x/y?q=%2e%2e/../admin"},
      {"/a%2a%c3%a9", "/a%2A%C3%A9"},
  };
  std::vector<std::string> forwarded;
  for (const auto &[spelling, canonical] : allowed) {
    const std::string target = spelling;
    CAPTURE(target);
    const Answer a = get(port, target);
    CHECK(a.status == 200);
    CHECK(echoed_url(a) == canonical);
    forwarded.emplace_back(canonical);
  }
  attacking = false;
  client.join();
  CHECK(client_answers >= 20);
  CHECK(client_wrong == 0);

  // What the upstream received, in order, besides the client's: the allowed canonical paths, and
  // nothing of the refused ones.
  const auto received = nlohmann::json::parse(get(node.port(), "/__received").body);
  std::vector<std::string> attacker_received;
  for (const auto &url : received)
    if (url.get<std::string>().rfind("/client/", 0) != 0)
      attacker_received.push_back(url);
  CHECK(attacker_received == forwarded);

  agent.kill(SIGTERM);
  CHECK(agent.wait(5000).has_value());
  std::filesystem::remove_all(work);
}
