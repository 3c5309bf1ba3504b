// Generated upstream responses through the gateway: each reaches the client as the same response
// (status, end-to-end headers, decoded body, re-framed for the client); a malformed one as a 502,
// or, when it breaks down after its head went out, cut short so that the client can tell. Never as
// anything else that parses as complete.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/http.h"
#include "proxy/proxy.h"
#include "support/gateway.h"
#include "support/http_generator.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

// Answers every connection's request with the bytes set last, then closes it (which ends a body
// that has no framing).
class ReplayUpstream {
 public:
  ReplayUpstream()
  {
    thread_ = std::thread([this] { serve(); });
  }
  ~ReplayUpstream()
  {
    stop_ = true;
    ::shutdown(listener_.fd(), SHUT_RDWR);
    thread_.join();
  }
  std::string address() const { return listener_.address(); }
  void answer_with(std::string raw)
  {
    std::lock_guard lock(mu_);
    answer_ = std::move(raw);
  }

 private:
  void serve()
  {
    while (!stop_) {
      const int c = ::accept(listener_.fd(), nullptr, nullptr);
      if (c < 0)
        return;
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        const auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0)
          break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      std::string answer;
      {
        std::lock_guard lock(mu_);
        answer = answer_;
      }
      [[maybe_unused]] auto sent = ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  LoopbackListener listener_{64};
  std::mutex mu_;
  std::string answer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A response as our parser reads it, ended by the connection's close: the final answer after any
// interim ones, its end-to-end headers and its body decoded.
struct Response {
  int status = 0;
  std::string headers, body;
  bool complete = false;  // a whole final answer, nothing malformed before its end
};

Response read_response(const std::string &raw, bool to_head)
{
  struct Reader final : proxy::HeadHandler {
    Response r;
    bool to_head = false;
    int on_head(proxy::HttpParser &p) override
    {
      if (p.status_code() < 200)
        return 0;  // interim: skipped
      r.status = p.status_code();
      const auto connection = p.header("connection").value_or(std::string_view{});
      for (std::size_t i = 0; i < p.header_count(); ++i)
        if (!proxy::is_hop_by_hop(p.header_name(i), connection))
          r.headers += std::string(p.header_name(i)) + ": " + std::string(p.header_value(i)) + "\n";
      p.set_body_sink(&r.body, proxy::Framing::length);
      return to_head || r.status == 204 || r.status == 304 ? 1 : 0;  // bodiless whatever the headers say
    }
  } reader;
  reader.to_head = to_head;
  const proxy::HttpLimits limits;
  proxy::HttpParser parser(HTTP_RESPONSE, limits, reader);
  std::size_t at = 0;
  for (;;) {
    auto step = parser.feed(raw.data() + at, raw.size() - at);
    at += step.consumed;
    if (step.status == proxy::HttpParser::Status::more)
      step = parser.finish();
    if (step.status != proxy::HttpParser::Status::done)
      return reader.r;
    if (parser.status_code() >= 200) {
      reader.r.complete = true;
      return reader.r;
    }
    parser.next_message();
  }
}

}  // namespace

TEST_CASE("generated upstream responses reach the client whole and re-framed, or as a 502")
{
  ReplayUpstream upstream;
  ForwardingHook hook;
  RunningProxy gateway(gateway_config(upstream.address(), 1), hook);
  const auto run = generated_run(2026, 600);
  HttpGenerator generator(run.seed);
  int relayed = 0, refused = 0, cut = 0;
  constexpr const char *kRequests[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
                                       "GET / HTTP/1.0\r\n\r\n"};
  for (int i = 0; i < run.cases; ++i) {
    const std::string raw = generator.response();
    const std::string request = kRequests[i % 3];
    const std::string response = escaped(raw);
    CAPTURE(request);
    CAPTURE(response);
    const bool to_head = request.starts_with("HEAD");
    upstream.answer_with(raw);
    const Response sent = read_response(raw, to_head);
    const std::string out = raw_exchange(gateway.port(), request);
    const Response got = read_response(out, to_head);
    const std::string answer = escaped(out);
    CAPTURE(answer);
    if (sent.complete && sent.status != 101) {
      ++relayed;
      REQUIRE(got.complete);
      CHECK(got.status == sent.status);
      CHECK(got.headers == sent.headers);
      CHECK(got.body == sent.body);
    } else if (got.status == 502) {
      // Found malformed before any of it reached the client: the client gets the proxy's answer.
      ++refused;
      CHECK(out.find("\"error\":\"Bad Gateway\"") != std::string::npos);
      if (sent.complete)  // a 101: switching protocols was never asked for
        CHECK(out.find("\"reason\":\"upstream switched protocols unasked\"") != std::string::npos);
    } else {
      // Found cut short or malformed after its head went out: the client gets what there was, and
      // its framing shows that it stops short. An HTTP/1.0 client reading an unsized answer until
      // the close cannot tell (nor could it from nginx or HAProxy).
      ++cut;
      CHECK(got.status == sent.status);
      if (!request.ends_with("HTTP/1.0\r\n\r\n") || raw.find("Content-Length") != std::string::npos)
        CHECK_FALSE(got.complete);
    }
  }
  MESSAGE("relayed ", relayed, ", refused with 502 ", refused, ", cut short ", cut);
  CHECK(relayed >= 100);
  CHECK(refused >= 40);
  CHECK(cut >= 2);
}
