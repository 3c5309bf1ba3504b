// The request codec against a table of valid and malformed requests: what is accepted is re-emitted
// with the proxy's own framing, what is ambiguous is refused with the status a client would see.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <riskgate/request.h>

#include "proxy/http.h"
#include "support/http_cases.h"

using namespace riskgate::proxy;

namespace {

// Plays the proxy's part: validate, re-emit the head, stream the body re-framed into `upstream`.
struct Codec final : HeadHandler {
  HttpLimits limits;
  HttpParser parser{HTTP_REQUEST, limits, *this};
  std::string upstream;
  int messages = 0;

  int on_head(HttpParser &p) override
  {
    if (const auto e = validate_request(p); e.status != 0) {
      p.fail(e.status, e.reason);
      return -1;
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
  verdict.add_header("x-riskgate\n-decision", std::string_view("4\0\x7f" "2\t!", 6));
  CHECK(verdict.headers ==
        "x-riskgate-identity: frontendx-riskgate-decision: 1GET /admin\r\n"
        "x-riskgate-decision: 42\t!\r\n");
  CHECK(verdict.header("X-RISKGATE-DECISION") == "42\t!");
  CHECK_FALSE(verdict.header("x-riskgate").has_value());

  std::string out;
  emit_error_response(401, "invalid_token", 7, verdict.headers, false, out);
  CHECK(out.find("\r\nx-riskgate-identity: frontendx-riskgate-decision: 1GET /admin\r\n") != std::string::npos);
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
