// The io_uring HTTP/1.1 proxy: listeners -> named upstreams (gateway) or -> the original destination
// recovered from the kernel (transparent). One reactor thread per worker, each with its own ring and
// its own SO_REUSEPORT listener sockets; every request passes the RequestHook before it is forwarded.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <riskgate/proxy/request.h>
#include <riskgate/common/result.h>

namespace riskgate::proxy {

// Limits of one request; beyond them the client gets the status in the comment and the connection
// closes.
struct HttpLimits {
  std::size_t max_head_bytes = 16 * 1024;     // request line + header block: 431
  std::size_t max_headers = 100;              // header count: 431
  std::uint64_t max_body_bytes = 8ull << 20;  // Content-Length or running chunked total: 413
};

// How a request path is made canonical before the hook and the upstream see it (docs/proxy.md, "Canonical
// paths"): dot segments removed, unreserved characters decoded, the hex of the rest upper case. The
// defaults are the safe ones; each option relaxes one refusal or merge for an upstream that needs it.
struct PathOptions {
  bool merge_slashes = true;         // "//" is "/"; false: empty segments are kept (and judged) as sent
  bool reject_encoded_slash = true;  // %2F or %5C in the path: 400; false: kept encoded, part of a segment
};

struct ListenerConfig {
  std::string service;       // name given to the hook (RequestView::service)
  std::string address;       // "HOST:PORT" (numeric; port 0 picks a free port, see Proxy::listen_port)
  std::string upstream;      // name of an UpstreamConfig; ignored when transparent
  bool transparent = false;  // forward to SO_ORIGINAL_DST (the datapath's connect4 redirect)
};

struct UpstreamConfig {
  std::string name;
  std::string address;  // "HOST:PORT", numeric or resolved once at start
};

struct Timeouts {
  std::uint32_t idle_ms = 60'000;               // keep-alive connection with no request: closed silently
  std::uint32_t header_ms = 10'000;             // first byte to complete head: 408
  std::uint32_t body_ms = 30'000;               // no request body progress: 408
  std::uint32_t upstream_connect_ms = 3'000;    // 504
  std::uint32_t upstream_response_ms = 30'000;  // no response progress: 504
  std::uint32_t drain_ms = 10'000;              // graceful stop: in-flight requests get this long
};

struct ProxyConfig {
  std::vector<ListenerConfig> listeners;
  std::vector<UpstreamConfig> upstreams;
  unsigned workers = 0;  // 0: one per core
  HttpLimits limits;
  PathOptions paths;
  Timeouts timeouts;
  std::uint32_t max_connections_per_worker = 65'536;  // beyond: 503 and close
  std::uint32_t idle_upstream_per_target = 256;       // kept-alive upstream connections per worker
  std::uint32_t buffer_count = 1024;                  // provided receive buffers per worker (power of 2)
  std::uint32_t buffer_size = 8192;
};

class Worker;

class Proxy {
 public:
  // Resolves upstreams and binds every listener (one SO_REUSEPORT socket per worker) so that
  // configuration errors surface here, before any thread runs.
  static Result<std::unique_ptr<Proxy>> create(ProxyConfig config, RequestHook &hook);
  ~Proxy();
  Proxy(const Proxy &) = delete;
  Proxy &operator=(const Proxy &) = delete;

  Result<void> start();
  // Graceful: stop accepting, let in-flight requests finish (up to Timeouts::drain_ms), close the
  // rest; returns when every worker has exited. Safe to call more than once.
  void stop();

  // The bound port of listener `index` (useful with port 0).
  std::uint16_t listen_port(std::size_t index) const;
  unsigned workers() const;
  // Every upstream's health, summed over workers (transparent destinations named "ip:port").
  std::vector<UpstreamHealth> upstream_health() const;

 private:
  Proxy(ProxyConfig config, RequestHook &hook);
  ProxyConfig config_;
  RequestHook &hook_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;
  bool stopped_ = false;
};

// "HOST:PORT" (IPv4, [IPv6] or a name resolved now) to a socket address.
Result<sockaddr_storage> parse_address(const std::string &text);

}  // namespace riskgate::proxy
