// The gateway end to end: real curl and wrk clients, a real nginx upstream, the proxy in-process
// with a hook that records what it saw.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <riskgate/proxy/proxy.h>
#include "support/capture.h"
#include "support/gateway.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

struct Seen {
  std::string method, target, host;
  std::uint64_t cookie = 0;
  std::uint16_t peer_port = 0;
  std::uint16_t local_port = 0;
  std::uint64_t received_ns = 0;
  bool upstream_known = false;
};

struct Completed {
  std::uint64_t decision_id = 0;
  int status = 0;
  std::uint64_t upstream_ns = 0;
  std::uint64_t request_body = 0;
  std::uint64_t response_body = 0;
};

// Forwards everything except /deny (403), /challenge (401 with WWW-Authenticate) and /drop (close).
class RecordingHook final : public RequestHook {
 public:
  void on_request(const RequestView &r, HookVerdict &v) override
  {
    std::lock_guard lock(mu_);
    Seen s;
    s.method = std::string(r.method);
    s.target = std::string(r.target);
    s.host = std::string(r.host);
    s.cookie = r.socket_cookie;
    s.peer_port = ntohs(reinterpret_cast<const sockaddr_in &>(r.peer).sin_port);
    s.local_port = ntohs(reinterpret_cast<const sockaddr_in &>(r.local).sin_port);
    s.received_ns = r.received_ns;
    s.upstream_known = r.upstream != nullptr && r.destination.ss_family == AF_INET;
    seen.push_back(s);
    v.decision_id = ++next_id_;
    if (r.path == "/deny") {
      v.kind = HookVerdict::Kind::respond;
      v.status = 403;
      v.reason = "blocked by test";
    } else if (r.path == "/drop") {
      v.kind = HookVerdict::Kind::close;
    } else if (r.path == "/challenge") {
      v.kind = HookVerdict::Kind::respond;
      v.status = 401;
      v.reason = "token required";
      v.add_header("WWW-Authenticate", "Bearer realm=\"test\"");
    } else {
      v.add_header("x-riskgate-decision", std::to_string(v.decision_id));
    }
  }
  void on_complete(const RequestView &, const ExchangeResult &r) override
  {
    std::lock_guard lock(mu_);
    completed.push_back(
        {r.decision_id, r.status, r.upstream_ns, r.request_body_bytes, r.response_body_bytes});
  }
  std::vector<Completed> completions()
  {
    std::lock_guard lock(mu_);
    return completed;
  }
  std::vector<Seen> requests()
  {
    std::lock_guard lock(mu_);
    return seen;
  }

 private:
  std::mutex mu_;
  std::uint64_t next_id_ = 1000;
  std::vector<Seen> seen;
  std::vector<Completed> completed;
};

proxy::ProxyConfig gateway_with(const std::string &upstream, proxy::Timeouts timeouts, unsigned workers,
                                std::uint32_t max_connections)
{
  auto config = gateway_config(upstream, workers);
  config.timeouts = timeouts;
  config.max_connections_per_worker = max_connections;
  return config;
}

// The gateway in front of `upstream`, recording what its hook saw.
struct Gateway {
  explicit Gateway(const std::string &upstream, proxy::Timeouts timeouts = {}, unsigned workers = 2,
                   std::uint32_t max_connections = 65'536)
      : proxy(gateway_with(upstream, timeouts, workers, max_connections), hook), port(proxy.port())
  {
  }
  std::string url(const std::string &path) const { return proxy.url(path); }

  RecordingHook hook;
  RunningProxy proxy;
  std::uint16_t port = 0;
};

std::string run(const std::string &command)
{
  return capture(command).out;
}

long nginx_accepts(const NginxUpstream &nginx)
{
  // "server accepts handled requests\n N N N"
  const auto status = run(fmt::format("curl -s http://127.0.0.1:{}/nginx_status", nginx.port()));
  std::smatch m;
  const std::regex re("\\n\\s*(\\d+)\\s+(\\d+)\\s+(\\d+)");
  REQUIRE(std::regex_search(status, m, re));
  return std::stol(m[1]);
}

// A TCP upstream that answers each connection's first request after `delay` (never, with delay <
// 0). With `close_second`, it reads a connection's second request and closes without answering:
// a server dropping a kept-alive connection just as a request arrives.
class ScriptedUpstream {
 public:
  explicit ScriptedUpstream(std::chrono::milliseconds delay, bool close_second = false)
      : delay_(delay), close_second_(close_second)
  {
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedUpstream()
  {
    stop_ = true;
    ::shutdown(listener_.fd(), SHUT_RDWR);
    thread_.join();
    for (int c : conns_) ::close(c);
  }
  std::string address() const { return listener_.address(); }
  int accepted() const { return accepted_; }

 private:
  static bool read_head(int c)
  {
    char buf[4096];
    std::string got;
    while (got.find("\r\n\r\n") == std::string::npos) {
      const auto n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0)
        return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void serve()
  {
    while (!stop_) {
      const int c = ::accept(listener_.fd(), nullptr, nullptr);
      if (c < 0)
        return;
      ++accepted_;
      conns_.push_back(c);
      if (!read_head(c) || delay_.count() < 0)
        continue;
      std::this_thread::sleep_for(delay_);
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow";
      [[maybe_unused]] auto n = ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      if (close_second_ && read_head(c))
        ::shutdown(c, SHUT_RDWR);
    }
  }
  std::chrono::milliseconds delay_;
  bool close_second_ = false;
  std::atomic<int> accepted_{0};
  LoopbackListener listener_{64};
  std::atomic<bool> stop_{false};
  std::vector<int> conns_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("curl through the gateway reaches nginx and the hook sees the connection's identity facts")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  const auto out = run(fmt::format("curl -s -i {}", gw.url("/hello?x=1")));
  CHECK(out.find("HTTP/1.1 200 OK") == 0);
  CHECK(out.find("hello world\n") != std::string::npos);
  const auto seen = gw.hook.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "GET");
  CHECK(seen[0].target == "/hello?x=1");
  CHECK(seen[0].host == fmt::format("127.0.0.1:{}", gw.port));
  CHECK(seen[0].cookie != 0);
  CHECK(seen[0].local_port == gw.port);
  CHECK(seen[0].peer_port != 0);
  CHECK(seen[0].received_ns > 0);
  CHECK(seen[0].upstream_known);
  for (int i = 0; i < 50 && gw.hook.completions().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto done = gw.hook.completions();
  REQUIRE(done.size() == 1);
  CHECK(done[0].decision_id == 1001);
  CHECK(done[0].status == 200);
  CHECK(done[0].upstream_ns > 0);
  CHECK(done[0].response_body == 12);
}

TEST_CASE("hook answers carry the status, extra headers and a JSON body with reason and decision id")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  auto out = run(fmt::format("curl -s -i {}", gw.url("/deny")));
  CHECK(out.find("HTTP/1.1 403 Forbidden") == 0);
  CHECK(out.find(R"({"status":403,"error":"Forbidden","reason":"blocked by test","decision_id":"1001"})") !=
        std::string::npos);
  out = run(fmt::format("curl -s -i {}", gw.url("/challenge")));
  CHECK(out.find("HTTP/1.1 401 Unauthorized") == 0);
  CHECK(out.find("WWW-Authenticate: Bearer realm=\"test\"") != std::string::npos);
  // close: no answer at all, the connection just ends
  CHECK(run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' {}", gw.url("/drop"))) == "000");
  CHECK(run(fmt::format("curl -s {}", gw.url("/after"))) == "hello world\n");
}

TEST_CASE("beyond max connections per worker a client gets 503 and a closed connection")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address(), {}, 1, 1);
  std::string first;
  std::thread holder([&] {
    // Holds the one connection the worker may have (no request, no half-close) for a while.
    first = raw_exchange(gw.port, "", 600, false);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const auto out = raw_exchange(gw.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  holder.join();
  CHECK(out.find("HTTP/1.1 503 Service Unavailable") == 0);
  CHECK(out.find("\"reason\":\"too many connections\"") != std::string::npos);
  CHECK(run(fmt::format("curl -s {}", gw.url("/"))) == "hello world\n");  // the slot is free again
}

TEST_CASE("wrk keep-alive load reuses upstream connections")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  const long before = nginx_accepts(nginx);
  const auto out = run(fmt::format("wrk -t1 -c8 -d1s {} 2>&1", gw.url("/")));
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("(\\d+) requests in")));
  const long requests = std::stol(m[1]);
  CHECK(requests > 500);
  CHECK(out.find("Non-2xx") == std::string::npos);
  CHECK(out.find("Socket errors") == std::string::npos);
  const long opened = nginx_accepts(nginx) - before - 1;  // minus the status request itself
  CHECK(opened <= 2 * 8);  // at most one upstream connection per client connection and worker
}

TEST_CASE("upstream down is 502 with a JSON reason, never a hang")
{
  const auto port = free_port();  // nothing listens there
  Gateway gw(fmt::format("127.0.0.1:{}", port));
  const auto out = run(fmt::format("curl -s -i -m 5 {}", gw.url("/")));
  CHECK(out.find("HTTP/1.1 502 Bad Gateway") == 0);
  CHECK(out.find("\"reason\":\"upstream connect: Connection refused\"") != std::string::npos);
  CHECK(out.find("\"decision_id\":\"1001\"") != std::string::npos);
  const auto health = gw.proxy->upstream_health();
  REQUIRE(health.size() == 1);
  CHECK(health[0].name == "orders-up");
  CHECK(health[0].consecutive_failures >= 1);
}

TEST_CASE("an upstream that never answers is 504 after the response timeout")
{
  ScriptedUpstream silent(std::chrono::milliseconds(-1));
  proxy::Timeouts timeouts;
  timeouts.upstream_response_ms = 300;
  Gateway gw(silent.address(), timeouts);
  const auto start = std::chrono::steady_clock::now();
  const auto out = run(fmt::format("curl -s -i -m 5 {}", gw.url("/")));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(out.find("HTTP/1.1 504 Gateway Timeout") == 0);
  CHECK(out.find("upstream response timeout") != std::string::npos);
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("a slow client cannot starve others and is cut off with 408")
{
  NginxUpstream nginx;
  proxy::Timeouts timeouts;
  timeouts.header_ms = 500;
  Gateway gw(nginx.address(), timeouts, 1);  // one worker: the slow client shares it with everyone
  std::string slow_answer;
  std::thread slow([&] {
    // Half a request head, then nothing: raw_exchange waits for the proxy's answer.
    slow_answer = raw_exchange(gw.port, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ", 3000, false);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) CHECK(run(fmt::format("curl -s {}", gw.url("/"))) == "hello world\n");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2000));
  slow.join();
  CHECK(slow_answer.find("HTTP/1.1 408 Request Timeout") == 0);
  CHECK(slow_answer.find("request header timeout") != std::string::npos);
}

TEST_CASE("pipelined requests are answered in order; bytes after Connection: close are ignored")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  const auto out = raw_exchange(gw.port,
                                "GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
                                "GET /status/202 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                                "GET /status/203 HTTP/1.1\r\nHost: a\r\n\r\n");
  const auto first = out.find("HTTP/1.1 201");
  const auto second = out.find("HTTP/1.1 202");
  CHECK(first == 0);
  CHECK(second != std::string::npos);
  CHECK(second > first);
  CHECK(out.find("Connection: close") != std::string::npos);
  CHECK(out.find("HTTP/1.1 203") == std::string::npos);
}

TEST_CASE("a request garbled or left unfinished behind an answered one gets its own 400, after that answer")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  for (const char *after : {"stray", "GET /x HT"}) {
    CAPTURE(after);
    const auto out =
        raw_exchange(gw.port, std::string("GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n") + after);
    CHECK(out.find("HTTP/1.1 201") == 0);
    const auto refused = out.find("HTTP/1.1 400 Bad Request");
    REQUIRE(refused != std::string::npos);
    CHECK(out.find("Connection: close", refused) != std::string::npos);
  }
  // The client half-closes with the body unfinished: it will never come, and the client is told. The
  // upstream stays silent: nginx answers before the body is in, and under load its answer could
  // reach the proxy before the client's FIN does.
  ScriptedUpstream silent(std::chrono::milliseconds(-1));
  Gateway silent_gw(silent.address());
  const auto out =
      raw_exchange(silent_gw.port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  CHECK(out.find("HTTP/1.1 400 Bad Request") == 0);
  CHECK(out.find("\"reason\":\"connection closed mid-message\"") != std::string::npos);
}

TEST_CASE("a smuggling attempt is refused with 400 and the connection closes")
{
  NginxUpstream nginx;
  Gateway gw(nginx.address());
  const auto out =
      raw_exchange(gw.port,
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\n\r\nGET /status/299 HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(out.find("HTTP/1.1 400 Bad Request") == 0);
  CHECK(out.find("Connection: close") != std::string::npos);
  CHECK(out.find("299") == std::string::npos);
  CHECK(gw.hook.requests().empty());  // refused before any decision
}

TEST_CASE("stop drains: an in-flight request completes, new connections are refused")
{
  ScriptedUpstream slow(std::chrono::milliseconds(300));
  Gateway gw(slow.address());
  std::string answer;
  std::thread client([&] { answer = run(fmt::format("curl -s -i -m 5 {}", gw.url("/"))); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gw.proxy->stop();
  client.join();
  CHECK(answer.find("HTTP/1.1 200 OK") == 0);
  CHECK(answer.find("slow") != std::string::npos);
  CHECK(run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' -m 2 {}", gw.url("/"))) == "000");
}

TEST_CASE("a pooled upstream connection closed as the request arrives: the request is sent again, once")
{
  ScriptedUpstream upstream(std::chrono::milliseconds(0), true);
  Gateway gw(upstream.address(), {}, 1);
  // Same client connection, one after the other: the second request reuses the pooled upstream
  // connection, which the upstream then drops unanswered.
  const auto out = run(fmt::format("curl -s -m 5 {} {}", gw.url("/a"), gw.url("/b")));
  CHECK(out == "slowslow");
  CHECK(upstream.accepted() == 2);
  const auto health = gw.proxy->upstream_health();
  REQUIRE(health.size() == 1);
  CHECK(health[0].consecutive_failures == 0);  // a stale pooled connection is not an upstream failure
}

TEST_CASE("large bodies stream both ways through the backpressure limits, chunked and sized")
{
  NodeEchoServer node;
  Gateway gw(node.address());
  std::string dir = run("mktemp -d /tmp/rgt-body.XXXXXX");
  dir.pop_back();  // newline
  REQUIRE(!dir.empty());
  // 3 MiB up (beyond the 1 MiB high-water mark), echoed back inside a JSON answer.
  run(fmt::format("head -c 3145728 /dev/zero | tr '\\0' 'a' > {}/body", dir));
  for (const char *framing : {"", "-H 'Transfer-Encoding: chunked'"}) {
    CAPTURE(framing);
    const auto out = run(
        fmt::format("curl -s -m 20 {} --data-binary @{}/body {} | wc -c", framing, dir, gw.url("/upload")));
    CHECK(std::stol(out) > 3145728);
    CHECK(std::stol(out) < 3145728 + 1024);
  }
  run(fmt::format("rm -rf {}", dir));
  const auto done = gw.hook.completions();
  REQUIRE(done.size() == 2);
  CHECK(done[0].request_body == 3145728);
  CHECK(done[1].request_body == 3145728);
  CHECK(done[0].response_body > 3145728);
}

TEST_CASE("a connect that never completes is 504 after the connect timeout (linked timeout)")
{
  // A listener whose accept queue is full: the kernel drops further SYNs, connect() hangs.
  LoopbackListener full(0);
  const int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const auto to = endpoint("127.0.0.1", full.port());
  REQUIRE(::connect(filler, reinterpret_cast<const sockaddr *>(&to), sizeof(sockaddr_in)) == 0);

  proxy::Timeouts timeouts;
  timeouts.upstream_connect_ms = 300;
  Gateway gw(full.address(), timeouts);
  const auto start = std::chrono::steady_clock::now();
  const auto out = run(fmt::format("curl -s -i -m 5 {}", gw.url("/")));
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(filler);
  CHECK(out.find("HTTP/1.1 504 Gateway Timeout") == 0);
  CHECK(out.find("\"reason\":\"upstream connect timeout\"") != std::string::npos);
  CHECK(took < std::chrono::seconds(2));
}

namespace {

// Opens a connection, makes one request with the headers a real client sends and reads the whole
// answer; the connection stays open and idle.
int idle_after_one_request(std::uint16_t port)
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const auto to = endpoint("127.0.0.1", port);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof(sockaddr_in)) == 0);
  const std::string request =
      "GET /?page=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
      "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.9\r\n"
      "Cookie: session=0123456789abcdef0123456789abcdef\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[4096];
  while (answer.find("hello world\n") == std::string::npos) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    answer.append(buf, static_cast<std::size_t>(n));
  }
  return fd;
}

}  // namespace

TEST_CASE("an idle keep-alive connection holds no buffers: its heap is its connection state alone")
{
  // A sanitizer build replaces malloc, and mallinfo2 then counts nothing: measured where it does.
  const auto probe_before = mallinfo2().uordblks;
  auto probe = std::make_unique<char[]>(64 << 10);
  const bool counted = mallinfo2().uordblks >= probe_before + (64 << 10);
  probe.reset();
  if (!counted) {
    MESSAGE("the allocator reports no heap in use (a sanitizer build): not measured");
    return;
  }
  NginxUpstream nginx;
  ForwardingHook hook;
  RunningProxy proxy(gateway_config(nginx.address(), 1), hook);
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i)  // the worker's spares and tables are warm
    fds.push_back(idle_after_one_request(proxy.port()));
  constexpr int kIdle = 400;
  fds.reserve(fds.size() + kIdle);
  const auto before = mallinfo2().uordblks;
  for (int i = 0; i < kIdle; ++i) fds.push_back(idle_after_one_request(proxy.port()));
  const auto after = mallinfo2().uordblks;
  for (int fd : fds) ::close(fd);
  const double per_connection = (static_cast<double>(after) - static_cast<double>(before)) / kIdle;
  MESSAGE("heap per idle connection: " << per_connection << " bytes");
  // Its ClientConn (576 bytes) and its entries in the worker's tables; a send buffer or a parser's
  // head kept past the exchange would add 250 to 500 bytes each.
  CHECK(per_connection > 500);
  CHECK(per_connection < 720);
}
