// riskgated's admin surfaces, each served by one epoll thread (never on the proxy's workers) that no
// slow client can hold: a request must come whole within 2 s of connecting and its reply be taken
// within 10 s; beyond 256 (HTTP) or 64 (socket) open connections a new one closes the oldest:
//  - HTTP on 127.0.0.1:9464 by default: GET /metrics (Prometheus text), GET /healthz (alive),
//    GET /readyz (200 ready, 503 with a reason); read-only: other methods 405, other paths 404;
//  - a unix socket (mode 0600) for riskgatectl, one JSON request line per connection:
//      {"cmd":"status"}            -> one JSON line from the agent's status callback
//      {"cmd":"explain","id":N}    -> the decision's JSON line, if among the recent ones
//      {"cmd":"stream"}            -> every audit line as it is written, until the client closes
//      {"cmd":"<other>",...}       -> Options::commands["<other>"](request), e.g. "manual_unblock"
//    Errors come back as {"error":"..."}; at most 64 streams are kept, one more gets an error.
//  HTTP answers a request head over 16 KiB with 431 and a malformed request line with 400; a
//  socket request line over 16 KiB is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include <riskgate/common/paths.h>
#include <riskgate/admin/metrics.h>
#include <riskgate/common/result.h>

namespace riskgate::admin {

class HttpServer {
 public:
  // Empty when ready; otherwise the one-line reason GET /readyz answers 503 with.
  using Readiness = std::function<std::string()>;
  // listen: "HOST:PORT" (port 0 picks a free one, see port()). Without `readiness`, /readyz is 200.
  static Result<std::unique_ptr<HttpServer>> start(const std::string &listen,
                                                   const metrics::Registry &registry,
                                                   Readiness readiness = {});
  virtual ~HttpServer() = default;
  virtual std::uint16_t port() const = 0;
};

class Socket {
 public:
  struct Options {
    std::string path = paths::kAdminSocket;
    std::function<nlohmann::json()> status;  // the agent's view: version, uptime, policy, ...
    std::size_t recent_decisions = 4096;     // kept for explain
    // Further commands by name; each gets the whole request object and returns the reply object.
    std::map<std::string, std::function<nlohmann::json(const nlohmann::json &)>> commands;
  };
  static Result<std::unique_ptr<Socket>> start(Options options);
  virtual ~Socket() = default;
  // Hands an audit line to streaming clients and to explain (wire to DecisionLog::set_listener).
  // A client that cannot keep up is disconnected, never waited for.
  virtual void publish(std::string_view line) = 0;  // without its newline
};

// Client side (riskgatectl): one request, one JSON reply. Fails when riskgated is not running.
Result<nlohmann::json> request(const std::string &socket_path, const nlohmann::json &command);
// Streams lines to `on_line` until it returns false or the agent goes away.
Result<void> stream(const std::string &socket_path, const std::function<bool(const std::string &)> &on_line);

}  // namespace riskgate::admin
