// The request codec against a table of valid and malformed requests: what is accepted is re-emitted
// with the proxy's own framing, what is ambiguous is refused with the status a client would see.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <riskgate/proxy/request.h>

#include "proxy/http.h"
#include "support/http_cases.h"
#include "support/http_generator.h"

using namespace riskgate::proxy;

namespace {

// What a parse saw of one message that passed validation: its request line, its end-to-end headers
// (as a proxy forwards them: no hop-by-hop, framing or riskgate headers) and its decoded body.
struct Seen {
  std::string method, target, headers, body;
  bool operator==(const Seen &) const = default;
};

// Plays the proxy's part: validate, make the target canonical, re-emit the head, stream the body
// re-framed into `upstream`.
// With `decode`, it plays the upstream's instead: nothing is re-emitted and each body is kept
// decoded in `seen` (the target is made canonical all the same, so a proxy that sent anything but a
// canonical target, which canonicalising leaves as it is, would be seen to).
struct Codec final : HeadHandler {
  HttpLimits limits;
  HttpParser parser{HTTP_REQUEST, limits, *this};
  bool decode = false;
  std::string upstream;
  std::vector<Seen> seen;
  int messages = 0;

  int on_head(HttpParser &p) override
  {
    if (const auto e = validate_request(p); e.status != 0) {
      p.fail(e.status, e.reason);
      return -1;
    }
    if (!p.make_target_canonical(PathOptions{}))
      return -1;
    Seen &s = seen.emplace_back();
    s.method = p.method();
    s.target = p.target();
    const auto connection = p.header("connection").value_or(std::string_view{});
    for (std::size_t i = 0; i < p.header_count(); ++i)
      if (!is_hop_by_hop(p.header_name(i), connection))
        s.headers += std::string(p.header_name(i)) + ": " + std::string(p.header_value(i)) + "\n";
    if (decode) {
      p.set_body_sink(&s.body, Framing::length);
      return 0;
    }
    emit_request_head(p, "x-riskgate-decision: 7\r\n", "10.0.0.1:80", upstream);
    p.set_body_sink(&upstream, p.chunked() ? Framing::chunked : Framing::length);
    return 0;
  }

  // Feeds `raw` in pieces of `piece` bytes; returns the error status (0 when every byte parsed).
  int run(const std::string &raw, std::size_t piece)
  {
    std::string pending;
    for (std::size_t at = 0; at < raw.size(); at += piece) {
      pending += raw.substr(at, piece);
      while (!pending.empty()) {
        const auto step = parser.feed(pending.data(), pending.size());
        pending.erase(0, step.consumed);
        if (step.status == HttpParser::Status::error)
          return parser.error().status;
        if (step.status == HttpParser::Status::more)
          break;
        ++messages;
        parser.next_message();
      }
    }
    return 0;
  }
};

// Chunk boundaries carry no meaning and follow the reads: compare chunked bodies decoded.
std::string dechunk(const std::string &message)
{
  const auto head_end = message.find("\r\n\r\n");
  if (message.find("Transfer-Encoding: chunked") == std::string::npos || head_end == std::string::npos)
    return message;
  std::string out = message.substr(0, head_end + 4);
  std::size_t at = head_end + 4;
  while (at < message.size()) {
    const auto line_end = message.find("\r\n", at);
    const auto size = std::stoul(message.substr(at, line_end - at), nullptr, 16);
    if (size == 0)
      return out + "<end>" + dechunk(message.substr(line_end + 4));
    out += message.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return out + "<unterminated>";
}

}  // namespace

TEST_CASE("the codec accepts, re-frames or refuses each request in the table, however it is split")
{
  for (const auto &c : riskgate::test::http_request_cases()) {
    for (const std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
      const std::string name = c.name;
      CAPTURE(name);
      CAPTURE(piece);
      Codec codec;
      const int status = codec.run(c.raw, piece);
      CHECK(status == c.status);
      if (c.status == 0)
        CHECK(dechunk(codec.upstream) == dechunk(c.upstream));
    }
  }
}

namespace {

// The upstream's view of what the proxy sent it: one more parse, bodies decoded.
struct Received {
  int status = 0;
  int messages = 0;
  std::vector<Seen> seen;
  bool operator==(const Received &) const = default;
};

Received receive(const std::string &bytes)
{
  Codec upstream;
  upstream.decode = true;
  Received r;
  r.status = upstream.run(bytes, std::size_t{1} << 20);
  r.messages = upstream.messages;
  r.seen = std::move(upstream.seen);
  return r;
}

}  // namespace

TEST_CASE(
    "generated requests parse the same however they are split, and the upstream receives exactly "
    "the messages the hook saw")
{
  const auto run = riskgate::test::generated_run(20261129, 20000);
  riskgate::test::HttpGenerator generator(run.seed);
  int accepted = 0, refused = 0, pipelined = 0;
  for (int i = 0; i < run.cases; ++i) {
    const std::string raw = generator.request();
    const std::string request = riskgate::test::escaped(raw);
    CAPTURE(request);
    Codec whole;
    const int status = whole.run(raw, std::size_t{1} << 20);
    (status == 0 ? accepted : refused) += 1;
    pipelined += whole.messages > 1 ? 1 : 0;
    // The upstream parses what it is sent as the same messages (line, headers, body) and finds
    // nothing more in it: no request rides along that the hook did not see.
    const Received forwarded = receive(whole.upstream);
    REQUIRE(forwarded.status == 0);
    REQUIRE(forwarded.messages == whole.messages);
    Codec original;
    original.decode = true;
    REQUIRE(original.run(raw, std::size_t{1} << 20) == status);
    REQUIRE(forwarded.seen.size() == original.seen.size());
    for (std::size_t m = 0; m < original.seen.size(); ++m) {
      Seen seen = forwarded.seen[m];
      const std::string added_host = "Host: 10.0.0.1:80\n";  // HTTP/1.0 without Host
      if (original.seen[m].headers.find("Host:") == std::string::npos &&
          seen.headers.rfind(added_host, 0) == 0)
        seen.headers.erase(0, added_host.size());
      REQUIRE(seen == original.seen[m]);
    }
    // However the bytes arrive, the same comes of them.
    for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{2} + i % 17}) {
      Codec split;
      REQUIRE(split.run(raw, piece) == status);
      REQUIRE(split.messages == whole.messages);
      REQUIRE(receive(split.upstream) == forwarded);
    }
  }
  MESSAGE("accepted ", accepted, ", refused ", refused, ", with pipelined requests ", pipelined);
  CHECK(accepted >= 2000);  // the generator reaches the forwarding path, not only the refusals
  CHECK(refused >= 2000);
}

TEST_CASE("too many header fields is 431")
{
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 150; ++i) raw += "X-" + std::to_string(i) + ": v\r\n";
  raw += "\r\n";
  Codec codec;
  CHECK(codec.run(raw, 1 << 20) == 431);
  CHECK(codec.parser.error().reason == "too many header fields");
}

TEST_CASE("a chunked body over the limit is 413 while it streams")
{
  Codec codec;
  codec.limits.max_body_bytes = 10;
  const std::string raw =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n";
  CHECK(codec.run(raw, 1 << 20) == 413);
}

TEST_CASE("the parser stops after each message so pipelined bytes wait for the response")
{
  Codec codec;
  const std::string raw = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  const auto step = codec.parser.feed(raw.data(), raw.size());
  CHECK(step.status == HttpParser::Status::done);
  CHECK(step.consumed == raw.find("GET /2"));
  CHECK(codec.parser.target() == "/1");
}

TEST_CASE("error responses carry a JSON body with the reason and the decision id")
{
  std::string out;
  emit_error_response(403, "blocked: \"risk\" 90", 42, "Retry-After: 5\r\n", true, out);
  CHECK(out.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
  CHECK(out.find("Content-Type: application/json\r\n") != std::string::npos);
  CHECK(out.find("Retry-After: 5\r\n") != std::string::npos);
  CHECK(out.find("Connection: close\r\n") != std::string::npos);
  const auto body = out.substr(out.find("\r\n\r\n") + 4);
  CHECK(body ==
        "{\"status\":403,\"error\":\"Forbidden\",\"reason\":\"blocked: \\\"risk\\\" "
        "90\",\"decision_id\":\"42\"}\n");
  CHECK(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
}

TEST_CASE("a header the hook adds cannot smuggle another one in, whatever its value holds")
{
  riskgate::HookVerdict verdict;
  verdict.add_header("x-riskgate-identity", "frontend\r\nx-riskgate-decision: 1\r\n\r\nGET /admin");
  verdict.add_header("x-riskgate\n-decision", std::string_view("4\0\x7f"
                                                               "2\t!",
                                                               6));
  CHECK(verdict.headers ==
        "x-riskgate-identity: frontendx-riskgate-decision: 1GET /admin\r\n"
        "x-riskgate-decision: 42\t!\r\n");
  CHECK(verdict.header("X-RISKGATE-DECISION") == "42\t!");
  CHECK_FALSE(verdict.header("x-riskgate").has_value());

  std::string out;
  emit_error_response(401, "invalid_token", 7, verdict.headers, false, out);
  CHECK(out.find("\r\nx-riskgate-identity: frontendx-riskgate-decision: 1GET /admin\r\n") !=
        std::string::npos);
  CHECK(out.find("\r\nGET /admin") == std::string::npos);
}

namespace {

struct ResponseCodec final : HeadHandler {
  HttpLimits limits;
  HttpParser parser{HTTP_RESPONSE, limits, *this};
  std::string client;
  Framing framing = Framing::chunked;
  int on_head(HttpParser &p) override
  {
    const Framing f = p.has_content_length() ? Framing::length : framing;
    emit_response_head(p, f, false, false, client);
    p.set_body_sink(&client, f);
    return 0;
  }
};

}  // namespace

TEST_CASE("a close-delimited response is re-framed as chunked for an HTTP/1.1 client")
{
  ResponseCodec codec;
  const std::string raw = "HTTP/1.1 200 OK\r\nConnection: close\r\nX-Up: 1\r\n\r\nhello";
  auto step = codec.parser.feed(raw.data(), raw.size());
  CHECK(step.status == HttpParser::Status::more);
  step = codec.parser.finish();
  CHECK(step.status == HttpParser::Status::done);
  CHECK(codec.client ==
        "HTTP/1.1 200 OK\r\nX-Up: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
}

TEST_CASE("a response with Content-Length and Transfer-Encoding is refused")
{
  ResponseCodec codec;
  const std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  const auto step = codec.parser.feed(raw.data(), raw.size());
  CHECK(step.status == HttpParser::Status::error);
}
