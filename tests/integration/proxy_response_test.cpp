// Generated upstream responses through the gateway, over connections closed after each answer and
// over connections kept alive: each reaches the client as the same response (status, end-to-end
// headers, decoded body, re-framed for the client); a malformed one as a 502, or, when it breaks
// down after its head went out, cut short so that the client can tell. Never as anything else that
// parses as complete, and never as another request's answer.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "proxy/http.h"
#include <riskgate/proxy/proxy.h>
#include "support/gateway.h"
#include "support/http_generator.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

// Answers each request on any of its connections with the bytes set last. After an answer that
// ends with the connection (or always, unless keep-alive is on) it closes that connection.
class ReplayUpstream {
 public:
  explicit ReplayUpstream(bool keep_alive) : keep_alive_(keep_alive)
  {
    thread_ = std::thread([this] { serve(); });
  }
  ~ReplayUpstream()
  {
    stop_ = true;
    thread_.join();
    for (auto &c : conns_) ::close(c.fd);
  }
  std::string address() const { return listener_.address(); }
  int connections() const { return connections_; }
  void answer_with(std::string raw, bool then_close)
  {
    std::lock_guard lock(mu_);
    answer_ = std::move(raw);
    close_after_ = then_close || !keep_alive_;
  }

 private:
  struct Conn {
    int fd;
    std::string got;
  };

  void serve()
  {
    while (!stop_) {
      std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
      for (const auto &c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0)
        continue;
      if (fds[0].revents & POLLIN)
        if (const int c = ::accept(listener_.fd(), nullptr, nullptr); c >= 0) {
          conns_.push_back({c, {}});
          ++connections_;
        }
      for (std::size_t i = fds.size() - 1; i > 0; --i)
        if (fds[i].revents != 0 && !read_and_answer(conns_[i - 1])) {
          ::close(conns_[i - 1].fd);
          conns_.erase(conns_.begin() + static_cast<long>(i - 1));
        }
    }
  }

  // Reads what is there; answers once a request head is complete. False: the connection is done.
  bool read_and_answer(Conn &c)
  {
    char buf[4096];
    const auto n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0)
      return false;
    c.got.append(buf, static_cast<std::size_t>(n));
    const auto head_end = c.got.find("\r\n\r\n");
    if (head_end == std::string::npos)
      return true;
    c.got.erase(0, head_end + 4);
    std::lock_guard lock(mu_);
    [[maybe_unused]] auto sent = ::send(c.fd, answer_.data(), answer_.size(), MSG_NOSIGNAL);
    return !close_after_;
  }

  const bool keep_alive_;
  LoopbackListener listener_{64};
  std::mutex mu_;
  std::string answer_;
  bool close_after_ = true;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};  // accepted so far
  std::vector<Conn> conns_;          // the serving thread's
  std::thread thread_;
};

// A response as our parser reads it, ended by the connection's close: the final answer after any
// interim ones, its end-to-end headers and its body decoded.
struct Response {
  int status = 0;
  std::string headers, body;
  bool complete = false;  // a whole final answer, nothing malformed before its end
  bool by_close = false;  // ...that only the connection's close ended
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
    if (step.status == proxy::HttpParser::Status::more) {
      step = parser.finish();
      reader.r.by_close = true;
    }
    if (step.status != proxy::HttpParser::Status::done)
      return reader.r;
    if (parser.status_code() >= 200) {
      reader.r.complete = true;
      return reader.r;
    }
    parser.next_message();
  }
}

// How the generated answers fared.
struct Tally {
  int relayed = 0, refused = 0, cut = 0;
  int upstream_connections = 0;
};

// Sends one client request through the gateway with the upstream answering `raw` (tagged X-Seq:
// seq), and checks what the client got: its own answer re-framed, a 502, or its answer cut short in
// a way it can tell.
void relay_one(ReplayUpstream &upstream, const RunningProxy &gateway, std::string raw,
               const std::string &request, int seq, Tally &tally)
{
  std::size_t at = 0;  // after the interim answers, which are not relayed
  while (raw.compare(at, 10, "HTTP/1.1 1") == 0 && raw.compare(at, 12, "HTTP/1.1 101") != 0 &&
         raw.find("\r\n\r\n", at) != std::string::npos)
    at = raw.find("\r\n\r\n", at) + 4;
  if (const auto line_end = raw.find("\r\n", at); line_end != std::string::npos)
    raw.insert(line_end + 2, fmt::format("X-Seq: {}\r\n", seq));
  const std::string response = escaped(raw);
  CAPTURE(request);
  CAPTURE(response);
  const bool to_head = request.starts_with("HEAD");
  const Response sent = read_response(raw, to_head);
  upstream.answer_with(raw, !sent.complete || sent.by_close);
  const std::string out = raw_exchange(gateway.port(), request);
  const Response got = read_response(out, to_head);
  const std::string answer = escaped(out);
  CAPTURE(answer);
  if (const auto tag = got.headers.find("X-Seq: "); tag != std::string::npos)
    REQUIRE(got.headers.substr(tag, got.headers.find('\n', tag) - tag) == fmt::format("X-Seq: {}", seq));
  if (sent.complete && sent.status != 101) {
    ++tally.relayed;
    REQUIRE(got.complete);
    CHECK(got.status == sent.status);
    CHECK(got.headers == sent.headers);
    CHECK(got.body == sent.body);
  } else if (got.status == 502) {
    // Found malformed before any of it reached the client: the client gets the proxy's answer.
    ++tally.refused;
    CHECK(out.find("\"error\":\"Bad Gateway\"") != std::string::npos);
    if (sent.complete)  // a 101: switching protocols was never asked for
      CHECK(out.find("\"reason\":\"upstream switched protocols unasked\"") != std::string::npos);
  } else {
    // Found cut short or malformed after its head went out: the client gets what there was, and
    // its framing shows that it stops short. An HTTP/1.0 client reading an unsized answer until
    // the close cannot tell (nor could it from nginx or HAProxy).
    ++tally.cut;
    CHECK(got.status == sent.status);
    if (!request.ends_with("HTTP/1.0\r\n\r\n") || raw.find("Content-Length") != std::string::npos)
      CHECK_FALSE(got.complete);
  }
}

// Replays generated answers, over an upstream that closes after each or keeps connections alive.
Tally replay_generated(bool keep_alive, std::uint64_t seed)
{
  constexpr const char *kRequests[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                                       "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"};
  ReplayUpstream upstream(keep_alive);
  ForwardingHook hook;
  RunningProxy gateway(gateway_config(upstream.address(), 1), hook);
  const auto run = generated_run(seed, 600);
  HttpGenerator generator(run.seed);
  Tally tally;
  for (int i = 0; i < run.cases; ++i)
    relay_one(upstream, gateway, generator.response(), kRequests[i % 3], i, tally);
  tally.upstream_connections = upstream.connections();
  MESSAGE("relayed ", tally.relayed, ", refused with 502 ", tally.refused, ", cut short ", tally.cut,
          "; upstream connections ", tally.upstream_connections);
  return tally;
}

}  // namespace

TEST_CASE("generated upstream responses reach the client whole and re-framed, or as a 502")
{
  const Tally tally = replay_generated(false, 2026);
  CHECK(tally.relayed >= 100);
  CHECK(tally.refused >= 40);
  CHECK(tally.cut >= 2);
}

TEST_CASE("over upstream connections kept alive, whatever the last answer was, a client gets its own")
{
  // Answers of every shape go over connections the pool keeps and reuses; each client must get the
  // answer to its own request (X-Seq), never a neighbour's or what was left of an earlier one.
  const Tally tally = replay_generated(true, 1130);
  CHECK(tally.relayed >= 100);
  CHECK(tally.relayed + tally.refused + tally.cut - tally.upstream_connections >=
        50);  // went over reused ones
}
