// The per-request hook between the proxy and everything that decides (identity, risk, enforcement).
// The proxy knows nothing of policy; the deciders know nothing of io_uring. Everything in a
// RequestView points into the proxy's buffers and is valid only during the call.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/upstream_health.h>

namespace riskgate {

struct HeaderView {
  std::string_view name;  // as received; compare case-insensitively
  std::string_view value;
};

struct RequestView {
  std::string_view method;
  std::string_view target;  // request-target, its path canonical (docs/proxy.md), the query as received
  std::string_view path;    // target without the query: what the upstream is sent
  std::string_view host;
  std::uint8_t http_minor = 1;
  std::span<const HeaderView> headers;          // after hop-by-hop and riskgate-reserved headers are removed
  std::optional<std::uint64_t> content_length;  // nullopt: chunked or no body
  bool chunked = false;
  sockaddr_storage peer{};          // the client socket's address as the proxy sees it
  sockaddr_storage local{};         // the listener address the request arrived on
  std::uint64_t socket_cookie = 0;  // SO_COOKIE of the accepted socket (0 if unavailable)
  std::string_view service;         // name of the listener/service (gateway) or "transparent"
  unsigned worker = 0;              // worker thread index
  std::uint64_t connection_id = 0;  // unique per accepted connection on this node
  std::uint64_t received_ns = 0;    // CLOCK_MONOTONIC when the request head was complete
  // Where the request would be forwarded: the named upstream (gateway) or the original destination
  // recovered from the kernel (transparent); family AF_UNSPEC when there is none.
  sockaddr_storage destination{};
  std::string_view upstream_name;            // configured upstream name, or "ip:port" in transparent mode
  const UpstreamHealth *upstream = nullptr;  // this worker's view of that upstream's health

  // First header with this name (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

// What the proxy does with a request.
struct HookVerdict {
  enum class Kind { forward, respond, close };
  Kind kind = Kind::forward;
  int status = 0;      // respond: HTTP status (401, 403, 429, ...)
  std::string reason;  // respond: short machine-readable reason, goes into the JSON body
  std::uint64_t decision_id = 0;
  // respond: extra response headers (WWW-Authenticate, Retry-After, ...);
  // forward: headers added to the upstream request (x-riskgate-identity, x-riskgate-decision).
  // Kept as the wire lines ("name: value\r\n" each) so the proxy appends them as they are and a
  // verdict costs one buffer, not one per header.
  std::string headers;
  bool close_after = false;  // respond: close the connection after the answer

  // Back to a plain forward with no headers; the strings keep their capacity, so a verdict reused
  // for the next request allocates nothing.
  void reset();

  // Appends "name: value\r\n". Control characters (CR, LF, NUL, ...; not HTAB in a value) are
  // dropped from both, so no value, however it was built, can start a header of its own.
  void add_header(std::string_view name, std::string_view value);
  // Value of the first added header with this name (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

// How the exchange ended, reported back after the response (or failure) for the learning signals.
struct ExchangeResult {
  std::uint64_t decision_id = 0;
  int status = 0;                 // status sent to the client (upstream's or the proxy's own)
  std::uint64_t upstream_ns = 0;  // time waiting for the upstream, 0 when not forwarded
  std::uint64_t request_body_bytes = 0;
  std::uint64_t response_body_bytes = 0;
};

// Called on a worker thread for every request, once its head is parsed, before anything is
// forwarded. Must not block; must be thread-safe (all workers share one hook). `verdict` arrives
// reset (a forward with no headers) and is the proxy's own, reused from request to request.
class RequestHook {
 public:
  virtual ~RequestHook() = default;
  virtual void on_request(const RequestView &request, HookVerdict &verdict) = 0;
  virtual void on_complete(const RequestView &request, const ExchangeResult &result) = 0;
};

// Names reserved for headers riskgate adds upstream; the proxy strips them from client requests.
inline constexpr std::string_view kReservedHeaderPrefix = "x-riskgate-";

}  // namespace riskgate
