// Network-namespace lab for kernel tests: namespaces, veth pairs, and worker processes placed in a
// cgroup and/or a namespace that connect, echo and send on command. Everything has a unique rgt*
// name and is removed on destruction, also when the test fails.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace riskgate::test {

// Runs a shell command and returns its output (stdout and stderr); throws with it when it fails.
std::string run_command(const std::string &command);

// `ip netns add rgtn-...`; deleted on destruction.
class ScopedNetns {
 public:
  ScopedNetns();
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns &) = delete;
  ScopedNetns &operator=(const ScopedNetns &) = delete;
  const std::string &name() const { return name_; }

 private:
  std::string name_;
};

// Runs fn on a thread that first enters `netns` (only that thread changes namespace); rethrows.
void run_in_netns(const ScopedNetns &netns, const std::function<void()> &fn);

// A veth pair: the host end stays in this namespace, the peer end goes into `netns`. Both ends get
// an address of a /24 unique to this pair (10.213.<n>.1 host, .2 peer) and are up; the peer's
// namespace has its loopback up too.
class VethPair {
 public:
  explicit VethPair(const ScopedNetns &netns);
  ~VethPair();
  VethPair(const VethPair &) = delete;
  VethPair &operator=(const VethPair &) = delete;
  const std::string &host_if() const { return host_; }
  const std::string &peer_if() const { return peer_; }
  const std::string &host_ip() const { return host_ip_; }
  const std::string &peer_ip() const { return peer_ip_; }

 private:
  std::string host_, peer_, host_ip_, peer_ip_;
};

sockaddr_storage endpoint(const std::string &ip, unsigned short port);

// A forked process living in a cgroup (absolute path) and/or a network namespace that executes
// simple socket commands sent by the test: listen with an echo server, connect, send-and-echo,
// receive and send UDP datagrams. The process is SIGKILLed and reaped on destruction.
class Worker {
 public:
  struct Options {
    std::string cgroup;  // empty: stay in the test's cgroup
    std::string netns;   // empty: stay in the test's namespace
  };
  explicit Worker(Options options);
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;
  pid_t pid() const { return pid_; }

  // Echo server on ip:port (0 = pick one) serving every connection; returns the bound port.
  unsigned short listen_echo(const std::string &ip, unsigned short port = 0);
  // Connects (500 ms timeout) and keeps the connection as the current one; returns 0 or errno.
  int connect(const std::string &ip, unsigned short port);
  // Sends `message` on the current connection and waits (500 ms) for its echo; returns 0 or errno
  // (EACCES when sk_msg dropped it, ETIMEDOUT when nothing came back).
  int send_echo(const std::string &message);
  // Local endpoint (address and port, IPv4 or IPv6) of the current connection.
  sockaddr_storage local_endpoint();
  void close_connection();

  // UDP receiver on ip:port (0 = pick one) that keeps every datagram's text; returns the bound port.
  unsigned short listen_udp(const std::string &ip, unsigned short port = 0);
  // sendto() of `text` (no spaces) from an unconnected UDP socket of the address's family (an IPv6
  // address such as ::ffff:127.0.0.1 takes an IPv6 socket); returns 0 or errno (EPERM when refused).
  int send_datagram(const std::string &ip, unsigned short port, const std::string &text);
  // How many datagrams whose text starts with `prefix` this worker's UDP receivers got.
  int datagrams_received(const std::string &prefix);

 private:
  std::string call(const std::string &request);
  pid_t pid_ = -1;
  int control_ = -1;
};

// Runs a program (argv) in its own process, optionally in a cgroup, with stdout and stderr into a
// file; SIGKILLed and reaped on destruction unless already stopped.
class Process {
 public:
  Process(const std::vector<std::string> &argv, const std::string &cgroup = "", const std::string &log = "");
  ~Process();
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;
  pid_t pid() const { return pid_; }
  void kill(int signal);
  // Waits up to timeout_ms for exit; the wait status, or nullopt if still running.
  std::optional<int> wait(int timeout_ms);

 private:
  pid_t pid_ = -1;
};

// Polls `done` every 10 ms until it holds or timeout_ms passes; returns its last value.
bool eventually(const std::function<bool()> &done, int timeout_ms = 2000);

// The port riskgated announced in its log: the number in the first match of `announcement` (a regex
// with one group, e.g. "gateway orders on port ([0-9]+)"), waiting up to timeout_ms; 0 if it never did.
std::uint16_t announced_port(const std::string &log, const std::string &announcement, int timeout_ms = 5000);

}  // namespace riskgate::test
