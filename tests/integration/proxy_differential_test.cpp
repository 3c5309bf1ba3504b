// Differential test: every request of the codec table, and a few hundred generated ones, go to a
// Node.js server (strict llhttp) directly and through riskgate. riskgate must refuse everything Node
// refuses, and where both accept, Node must see the same method, body and end-to-end headers either
// way, and through riskgate the canonical form of the target it sees directly.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/http.h"
#include "proxy/path.h"
#include <riskgate/proxy/proxy.h>
#include "support/gateway.h"
#include "support/http_cases.h"
#include "support/http_generator.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

// The first final answer on a connection (interim 1xx answers skipped).
struct Answer {
  int status = 0;       // 0: no HTTP answer (connection closed)
  nlohmann::json echo;  // Node's echo of the first request, when status is 200
};

Answer parse_answer(const std::string &raw)
{
  Answer a;
  std::size_t at = 0;
  while (at < raw.size() && raw.compare(at, 9, "HTTP/1.1 ") == 0) {
    const auto head_end = raw.find("\r\n\r\n", at);
    if (head_end == std::string::npos)
      break;
    const int status = std::stoi(raw.substr(at + 9, 3));
    const auto head = raw.substr(at, head_end - at);
    at = head_end + 4;
    if (status / 100 == 1)
      continue;  // interim (100 Continue): the answer follows
    a.status = status;
    std::size_t length = 0;
    for (const char *name : {"Content-Length: ", "content-length: "})
      if (const auto cl = head.rfind(name); cl != std::string::npos)
        length = std::stoul(head.substr(cl + 16));
    if (status == 200)
      a.echo = nlohmann::json::parse(raw.substr(at, length), nullptr, false);
    break;
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

enum class Outcome { both_accept, both_refuse, only_riskgate_refuses };

struct Tally {
  int both_accept = 0, both_refuse = 0, only_riskgate_refuses = 0;
  void add(Outcome o)
  {
    (o == Outcome::both_accept   ? both_accept
     : o == Outcome::both_refuse ? both_refuse
                                 : only_riskgate_refuses) += 1;
  }
};

// The bytes of the first message in `raw`, as riskgate's parser delimits it.
std::string first_message(const std::string &raw)
{
  struct Heads final : proxy::HeadHandler {
    int on_head(proxy::HttpParser &) override { return 0; }
  } heads;
  const proxy::HttpLimits limits;
  proxy::HttpParser parser(HTTP_REQUEST, limits, heads);
  const auto step = parser.feed(raw.data(), raw.size());
  return raw.substr(0, step.status == proxy::HttpParser::Status::done ? step.consumed : raw.size());
}

// The target riskgate forwards in place of one Node received directly: its canonical form.
std::string canonical(std::string target)
{
  const auto result = proxy::canonicalise_target(target.data(), target.size(), proxy::PathOptions{});
  REQUIRE(result.refusal.empty());
  target.resize(result.length);
  return target;
}

// Sends `raw` to Node directly and through riskgate and checks what must hold whatever the request:
// a request Node refuses riskgate refuses too, and says why; one both accept reaches Node the same.
Outcome differ(const NodeEchoServer &node, const RunningProxy &gateway, const std::string &raw)
{
  if (raw.find_first_not_of("\r\n") == std::string::npos)
    return Outcome::both_accept;  // blank lines after the last request: nothing asked, nothing to answer
  const Answer direct = parse_answer(raw_exchange(node.port(), raw));
  const Answer via = parse_answer(raw_exchange(gateway.port(), raw));
  if (direct.status != 200 && via.status == 200) {
    // Node answers an error in a later pipelined message before the first message's answer;
    // riskgate answers in order. Then the first message alone must be one Node accepts, and what
    // follows it is judged the same way on its own.
    const std::string first = first_message(raw);
    CHECK(parse_answer(raw_exchange(node.port(), first)).status == 200);
    differ(node, gateway, raw.substr(first.size()));
    return Outcome::both_refuse;
  }
  if (direct.status != 200) {
    CHECK(via.status != 200);
    CHECK(via.status != 0);  // riskgate always says why (JSON error), never just drops
    return Outcome::both_refuse;
  }
  if (via.status != 200) {
    CHECK(via.status != 0);  // stricter than Node is allowed, silent is not
    return Outcome::only_riskgate_refuses;
  }
  // What follows the first message (pipelined requests, stray bytes) is judged the same way on its
  // own: Node may answer it before the first message, so the two answer streams are not compared.
  if (const std::string first = first_message(raw); first.size() < raw.size())
    differ(node, gateway, raw.substr(first.size()));
  if (raw.rfind("HEAD ", 0) == 0)
    return Outcome::both_accept;  // no body, so no echo to compare
  REQUIRE(via.echo.is_object());
  REQUIRE(direct.echo.is_object());
  CHECK(via.echo["method"] == direct.echo["method"]);
  CHECK(via.echo["url"] == canonical(direct.echo["url"]));
  CHECK(via.echo["body"] == direct.echo["body"]);
  auto via_headers = end_to_end_headers(via.echo);
  const std::string added_host = "Host: " + node.address() + "\n";  // HTTP/1.0 without Host
  if (raw.find("Host:") == std::string::npos && via_headers.rfind(added_host, 0) == 0)
    via_headers.erase(0, added_host.size());
  CHECK(via_headers == end_to_end_headers(direct.echo));
  CHECK(via.echo.dump().find(R"("x-riskgate-decision","7")") != std::string::npos);
  return Outcome::both_accept;
}

}  // namespace

TEST_CASE("riskgate refuses everything Node.js refuses and forwards the same semantics otherwise")
{
  NodeEchoServer node;
  ForwardingHook hook;
  RunningProxy gateway(gateway_config(node.address(), 1), hook);
  Tally tally;
  for (const auto &c : http_request_cases()) {
    const std::string name = c.name;
    CAPTURE(name);
    const Outcome outcome = differ(node, gateway, c.raw);
    if (outcome == Outcome::only_riskgate_refuses)
      CHECK(c.status != 0);  // only where the table says riskgate is stricter on purpose
    tally.add(outcome);
  }
  MESSAGE("both accept: ", tally.both_accept, ", both refuse: ", tally.both_refuse,
          ", only riskgate refuses: ", tally.only_riskgate_refuses);
  CHECK(tally.both_accept >= 5);
  CHECK(tally.both_refuse >= 15);
}

TEST_CASE("generated requests: riskgate refuses whatever Node.js refuses and forwards the rest the same")
{
  NodeEchoServer node;
  ForwardingHook hook;
  RunningProxy gateway(gateway_config(node.address(), 1), hook);
  const auto run = generated_run(1129, 600);
  HttpGenerator generator(run.seed);
  Tally tally;
  for (int i = 0; i < run.cases; ++i) {
    const std::string raw = generator.request();
    const std::string request = escaped(raw);
    CAPTURE(request);
    tally.add(differ(node, gateway, raw));
  }
  // riskgate may be stricter than Node (a refusal it explains); it may never be laxer.
  MESSAGE("both accept: ", tally.both_accept, ", both refuse: ", tally.both_refuse,
          ", only riskgate refuses: ", tally.only_riskgate_refuses);
  CHECK(tally.both_accept >= 60);
  CHECK(tally.both_refuse >= 60);
}
