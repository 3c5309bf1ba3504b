// Real upstream servers for proxy tests, each on a free loopback port with its own temporary
// directory; the process is killed (and the directory removed) on destruction, and dies with the
// test process if that is killed first (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace riskgate::test {

// A free TCP port on 127.0.0.1 (bound and released: a small race, fine on a test machine).
std::uint16_t free_port();
// Waits until something accepts on ip:port; false after timeout_ms.
bool wait_for_port(std::uint16_t port, int timeout_ms = 5000, const std::string &ip = "127.0.0.1");

// A TCP socket listening on 127.0.0.1:<ephemeral port> with `backlog`; closed on destruction. A
// server of a test's own accepts on fd(); backlog 0 plus one connection that is never accepted
// makes an address whose connects hang.
class LoopbackListener {
 public:
  explicit LoopbackListener(int backlog);
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener &) = delete;
  LoopbackListener &operator=(const LoopbackListener &) = delete;
  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A child process, in `cgroup` (an absolute path) when one is given; SIGKILL + waitpid on destruction.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const std::string &program, const std::vector<std::string> &args,
               const std::string &cgroup = "");
  ~ChildProcess();
  ChildProcess(ChildProcess &&other) noexcept;
  ChildProcess &operator=(ChildProcess &&other) noexcept;
  pid_t pid() const { return pid_; }
  void kill_now();

 private:
  pid_t pid_ = -1;
};

// nginx, single process (master_process off), keep-alive on. Locations:
//   /          200 "hello world\n" (12 bytes)
//   /status/N  answers status N (200-204, 299, 404, 500, 503)
//   /nginx_status  stub_status (accepted connections: keep-alive reuse checks)
class NginxUpstream {
 public:
  // Any loopback address; in `cgroup` from its start, so that its listening socket is that cgroup's.
  explicit NginxUpstream(const std::string &ip = "127.0.0.1", const std::string &cgroup = "");
  ~NginxUpstream();
  NginxUpstream(const NginxUpstream &) = delete;
  NginxUpstream &operator=(const NginxUpstream &) = delete;
  std::uint16_t port() const { return port_; }
  std::string address() const;
  void stop() { process_.kill_now(); }

 private:
  std::string dir_;
  std::string ip_;
  std::uint16_t port_ = 0;
  ChildProcess process_;
};

// Node.js http server (strict llhttp, insecureHTTPParser off) that answers every request with JSON
// {method, url, httpVersion, headers: [name, value, ...] as received, body (latin1)}, except
// GET /__received, answered with the url of every request before it, in order.
class NodeEchoServer {
 public:
  NodeEchoServer();
  ~NodeEchoServer();
  NodeEchoServer(const NodeEchoServer &) = delete;
  NodeEchoServer &operator=(const NodeEchoServer &) = delete;
  std::uint16_t port() const { return port_; }
  std::string address() const;

 private:
  std::string dir_;
  std::uint16_t port_ = 0;
  ChildProcess process_;
};

// Sends `request` on a fresh connection to 127.0.0.1:port, half-closes (unless told not to), and
// returns everything read until the server closes or timeout_ms passes.
std::string raw_exchange(std::uint16_t port, const std::string &request, int timeout_ms = 3000,
                         bool half_close = true);

}  // namespace riskgate::test
