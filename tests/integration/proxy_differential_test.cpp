// Differential test: every request of the codec table goes to a Node.js server (strict llhttp)
// directly and through riskgate. riskgate must refuse everything Node refuses, and where both accept,
// Node must see the same method, target, body and end-to-end headers either way.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/http.h"
#include "proxy/proxy.h"
#include "support/gateway.h"
#include "support/http_cases.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

struct Answer {
  int status = 0;       // 0: no HTTP answer (connection closed)
  nlohmann::json echo;  // Node's echo of the first request, when status is 200
  int responses = 0;
};

Answer parse_answer(const std::string &raw)
{
  Answer a;
  std::size_t at = 0;
  while (raw.compare(at, 9, "HTTP/1.1 ") == 0) {
    const int status = std::stoi(raw.substr(at + 9, 3));
    const auto head_end = raw.find("\r\n\r\n", at);
    if (head_end == std::string::npos)
      break;
    std::size_t length = 0;
    const auto head = raw.substr(at, head_end - at);
    for (const char *name : {"Content-Length: ", "content-length: "})
      if (const auto cl = head.find(name); cl != std::string::npos)
        length = std::stoul(head.substr(cl + 16));
    if (a.responses++ == 0) {
      a.status = status;
      if (status == 200)
        a.echo = nlohmann::json::parse(raw.substr(head_end + 4, length), nullptr, false);
    }
    at = head_end + 4 + length;
  }
  return a;
}

// Node's view of the headers, minus what a proxy legitimately changes: hop-by-hop fields, framing
// (re-emitted), and riskgate's own (reserved) headers.
std::string end_to_end_headers(const nlohmann::json &echo)
{
  std::string out;
  const auto &raw = echo["headers"];
  const auto connection = [&] {
    for (std::size_t i = 0; i + 1 < raw.size(); i += 2)
      if (proxy::iequals(raw[i].get<std::string>(), "connection"))
        return raw[i + 1].get<std::string>();
    return std::string();
  }();
  for (std::size_t i = 0; i + 1 < raw.size(); i += 2) {
    const auto name = raw[i].get<std::string>();
    if (proxy::is_hop_by_hop(name, connection))
      continue;
    out += name + ": " + raw[i + 1].get<std::string>() + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("riskgate refuses everything Node.js refuses and forwards the same semantics otherwise")
{
  NodeEchoServer node;
  ForwardingHook hook;
  RunningProxy gateway(gateway_config(node.address(), 1), hook);

  int both_accept = 0, both_refuse = 0, only_riskgate_refuses = 0;
  for (const auto &c : http_request_cases()) {
    const std::string name = c.name;
    CAPTURE(name);
    const Answer direct = parse_answer(raw_exchange(node.port(), c.raw));
    const Answer via = parse_answer(raw_exchange(gateway.port(), c.raw));
    if (direct.status != 200) {
      CHECK(via.status != 200);
      CHECK(via.status != 0);  // riskgate always says why (JSON error), never just drops
      ++both_refuse;
      continue;
    }
    if (via.status != 200) {
      CHECK(c.status != 0);  // only where the table says riskgate is stricter on purpose
      ++only_riskgate_refuses;
      continue;
    }
    ++both_accept;
    CHECK(via.responses == direct.responses);
    REQUIRE(via.echo.is_object());
    REQUIRE(direct.echo.is_object());
    CHECK(via.echo["method"] == direct.echo["method"]);
    CHECK(via.echo["url"] == direct.echo["url"]);
    CHECK(via.echo["body"] == direct.echo["body"]);
    auto via_headers = end_to_end_headers(via.echo);
    const std::string added_host = "Host: " + node.address() + "\n";  // HTTP/1.0 without Host
    if (c.raw.find("Host:") == std::string::npos && via_headers.rfind(added_host, 0) == 0)
      via_headers.erase(0, added_host.size());
    CHECK(via_headers == end_to_end_headers(direct.echo));
    CHECK(via.echo.dump().find(R"("x-riskgate-decision","7")") != std::string::npos);
  }
  MESSAGE("both accept: ", both_accept, ", both refuse: ", both_refuse,
          ", only riskgate refuses: ", only_riskgate_refuses);
  CHECK(both_accept >= 5);
  CHECK(both_refuse >= 15);
}
