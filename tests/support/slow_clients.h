// Loopback and unix-socket clients for testing servers under slow clients: many connections that
// start a request and never finish it, a timed HTTP GET, and the server's open connections as the
// kernel sees them. Everything a test opens here is closed on destruction, also when it fails.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace riskgate::test {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};
Address loopback(std::uint16_t port);
Address unix_socket(const std::string &path);

// `count` connections to `to`, each sending `opening` and then one byte ('a') every `trickle`,
// never completing a request; one the server closes is counted and replaced by a new one until
// stop() (or destruction). All on one thread with non-blocking sockets, so none waits for another.
class SlowClients {
 public:
  SlowClients(Address to, std::size_t count, std::string opening,
              std::chrono::milliseconds trickle = std::chrono::milliseconds(500));
  ~SlowClients();
  SlowClients(const SlowClients &) = delete;
  SlowClients &operator=(const SlowClients &) = delete;
  void stop();                                          // closes all of them
  std::size_t connected() const { return connected_; }  // sent their opening, not yet closed
  std::size_t closed_by_server() const { return closed_; }
  // The longest a connection stayed open before the server closed it.
  std::chrono::milliseconds longest_held() const { return std::chrono::milliseconds(longest_ms_.load()); }

 private:
  void run();
  Address to_;
  std::size_t count_;
  std::string opening_;
  std::chrono::milliseconds trickle_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> connected_{0}, closed_{0};
  std::atomic<long> longest_ms_{0};
  std::thread thread_;
};

struct Reply {
  std::string text;  // all the server sent until it closed, empty when nothing came
  std::chrono::milliseconds took{0};
};
// Sends `request` on a new connection, stops sending (as socat does at the end of its input) and
// reads until the server closes it (1 s at most for the connect and for each read).
Reply exchange(const Address &to, const std::string &request);
// GET `target` from 127.0.0.1:port.
Reply http_get(std::uint16_t port, const std::string &target);

// What a kubelet would see probing a server: GET /healthz and /readyz in turn on 127.0.0.1:port,
// each on a new connection, 20 ms apart for `duration`.
struct HealthProbes {
  std::size_t count = 0;
  std::vector<std::string> failures;  // each probe not answered 200 within `within`: what came instead
  std::size_t most_open = 0;          // the most connections `server` held on the port after a probe
  std::string summary() const;        // how many failed, and the first
};
HealthProbes probe_health(pid_t server, std::uint16_t port, std::chrono::milliseconds duration,
                          std::chrono::milliseconds within);

// Connections `pid` holds open on its TCP port `port` (accepted and not yet closed by it).
std::size_t open_connections(pid_t pid, std::uint16_t port);

// Raises this process's RLIMIT_NOFILE (soft, and hard if needed: tests run as root) to `at_least`;
// processes started after it inherit it. False when the kernel refuses.
bool raise_fd_limit(std::size_t at_least);

}  // namespace riskgate::test
