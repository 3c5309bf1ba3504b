// The block-latency lab the kernel benchmarks share (header-only: every bench/*.cpp is its own
// executable): a sink server, a workload that loops send() or connect() until the kernel refuses it,
// and the measurement from "block issued" to "first refusal". The caller supplies what issuing a
// block means (a raw map write, or a whole decision through the enforcer).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <riskgate/common/identity.h>

#include "bench_lab.h"
#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::bench::blocklab {

using namespace std::chrono_literals;

inline constexpr IdentityId kClient = 41, kServer = 42;
inline const char *const kServerIp = "127.0.0.42";
// Also the server's identity, but unroutable: inside the lab's private network namespace a
// blackhole route refuses it right after connect4, so a connect loop costs a few microseconds
// instead of a loopback handshake (TEST-NET-1, and no packet ever leaves: the route drops it).
inline const char *const kUnroutableIp = "192.0.2.42";

inline sockaddr_in address(unsigned short port, const char *ip = kServerIp)
{
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &addr.sin_addr);
  return addr;
}

// Drains every connection it accepts.
inline int sink_server(int port_pipe)
{
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = address(0);
  socklen_t len = sizeof(addr);
  if (::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 1024) != 0)
    return 1;
  ::getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
  const unsigned short port = ntohs(addr.sin_port);
  (void)::write(port_pipe, &port, sizeof(port));
  for (;;) {
    const int conn = ::accept(listener, nullptr, nullptr);
    if (conn < 0)
      continue;
    std::thread([conn] {
      char buf[4096];
      while (::recv(conn, buf, sizeof(buf), 0) > 0) {
      }
      ::close(conn);
    }).detach();
  }
}

// SCHED_FIFO for the writer and the workload (they run for milliseconds per sample): on a shared
// 2-vCPU machine the tail is otherwise the scheduler's (other builds preempting), not the kernel
// datapath's. Without CAP_SYS_NICE the default policy stays and the tail shows it.
inline void realtime()
{
  sched_param param{};
  param.sched_priority = 1;
  ::sched_setscheduler(0, SCHED_FIFO, &param);
}

struct Sample {
  std::uint64_t refused_ns;  // when the first refused call returned
  std::uint64_t period_ns;   // mean loop period before it
};

// The workload: after "go" on `go_pipe`, loops send() (or connect()) until refused, reports a Sample.
// With `netns`, it first enters that namespace and connects to kUnroutableIp (connects only).
inline int workload(bool messages, unsigned short port, int go_pipe, int result_pipe,
                    const std::string &netns = "")
{
  realtime();
  if (!netns.empty()) {
    const int ns = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0)
      return 3;
    ::close(ns);
  }
  auto addr = address(port, netns.empty() ? kServerIp : kUnroutableIp);
  int fd = ::socket(AF_INET, messages ? SOCK_STREAM : SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (messages && ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
    return 1;
  char go = 0;
  (void)::write(result_pipe, &go, 1);  // ready
  if (::read(go_pipe, &go, 1) != 1)
    return 1;
  char buf[64] = {};
  std::uint64_t iterations = 0;
  const std::uint64_t start = bench::now_ns();
  for (;;) {
    ++iterations;
    int rc;
    if (messages) {
      rc = static_cast<int>(::send(fd, buf, sizeof(buf), MSG_NOSIGNAL));
    } else {
      // Non-blocking: connect4 decides inside the call; the handshake itself is not waited for.
      rc = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
      if (rc < 0 && errno == EINPROGRESS)
        rc = 0;
      // A connect the blackhole route refused leaves the socket unconnected: reuse it, so that the
      // loop does not churn sockets (their RCU-deferred frees show up in the tail otherwise).
      if (netns.empty()) {
        ::close(fd);
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      }
    }
    if (rc < 0 && errno == (messages ? EACCES : EPERM))
      break;
    if (rc < 0 && netns.empty())
      return 2;  // (in the namespace every connect fails at the blackhole route until refused earlier)
  }
  const std::uint64_t end = bench::now_ns();
  const Sample s{end, (end - start) / iterations};
  (void)::write(result_pipe, &s, sizeof(s));
  return 0;
}

struct Latencies {
  std::vector<double> latency_us, period_us;
};

// `block` issues the block (what is timed starts just before it); `unblock` lifts it between samples.
// With `netns` (Lab::unroutable_netns()), connects go to kUnroutableIp from inside it.
inline Latencies measure(const bench::CgroupTree &tree, bool messages, unsigned short port, int samples,
                         const std::function<void()> &block, const std::function<void()> &unblock,
                         const std::string &netns = "")
{
  Latencies out;
  for (int i = 0; i < samples; ++i) {
    int go[2], result[2];
    if (::pipe(go) != 0 || ::pipe(result) != 0)
      std::exit(1);
    bench::Child client(tree.path("gov/client"), 1,
                        [&] { return workload(messages, port, go[0], result[1], netns); });
    char ready = 0;
    if (::read(result[0], &ready, 1) != 1)
      std::exit(1);
    (void)::write(go[1], "g", 1);
    std::this_thread::sleep_for(2ms);               // the workload is in its loop
    const std::uint64_t written = bench::now_ns();  // the write is issued
    block();
    Sample s{};
    if (::read(result[0], &s, sizeof(s)) != sizeof(s))
      std::exit(1);
    out.latency_us.push_back(static_cast<double>(static_cast<std::int64_t>(s.refused_ns - written)) / 1000.0);
    out.period_us.push_back(static_cast<double>(s.period_ns) / 1000.0);
    unblock();
    for (int fd : {go[0], go[1], result[0], result[1]}) ::close(fd);
  }
  return out;
}

inline void print(const char *what, const Latencies &r)
{
  std::printf("  %-28s p50 %6.1f us  p99 %6.1f us  max %6.1f us   (loop period p50 %5.1f us)\n", what,
              bench::percentile(r.latency_us, 50), bench::percentile(r.latency_us, 99),
              bench::percentile(r.latency_us, 100), bench::percentile(r.period_us, 50));
}

// A private cgroup tree (gov/client, gov/server), the datapath attached to `gov` with its own pin
// root, the two identities, and a sink server in gov/server. Throws when the machine cannot run it;
// removes its pins on destruction. The caller is pinned to CPU 0 with SCHED_FIFO.
class Lab {
 public:
  explicit Lab(const std::string &name)
      : tree_(name, {"gov", "gov/client", "gov/server"}),
        pin_root_(fmt::format("/sys/fs/bpf/rgt-bench-{}-{}", name, ::getpid()))
  {
    kernel::DatapathConfig config;
    config.pin_root = pin_root_;
    config.cgroup = tree_.path("gov");
    auto dp = kernel::Datapath::start(config);
    if (!dp) {
      (void)kernel::Datapath::uninstall(pin_root_);
      throw std::runtime_error(dp.error());
    }
    datapath_ = std::move(*dp);
    if (auto ok =
            maps().sync_identities({{kClient, "client", {tree_.id("gov/client")}, {}},
                                    {kServer,
                                     "server",
                                     {tree_.id("gov/server")},
                                     {*net::parse_prefix(kServerIp), *net::parse_prefix(kUnroutableIp)}}});
        !ok)
      throw std::runtime_error(ok.error());
    int port_pipe[2];
    if (::pipe(port_pipe) != 0)
      throw std::runtime_error("pipe");
    server_ = std::make_unique<bench::Child>(tree_.path("gov/server"), -1,
                                             [&] { return sink_server(port_pipe[1]); });
    if (::read(port_pipe[0], &port_, sizeof(port_)) != sizeof(port_))
      throw std::runtime_error("sink server did not start");
    ::close(port_pipe[0]);
    ::close(port_pipe[1]);
    bench::pin_to_cpu(0);
    realtime();
  }
  // The lab, or null after printing why it cannot run here.
  static std::unique_ptr<Lab> start(const std::string &name)
  {
    try {
      return std::make_unique<Lab>(name);
    } catch (const std::exception &e) {
      std::fprintf(stderr, "%s\n", e.what());
      return nullptr;
    }
  }
  // A private network namespace with a blackhole route for kUnroutableIp (made on first use).
  const std::string &unroutable_netns()
  {
    if (netns_.empty()) {
      netns_ = fmt::format("rgt-bench-{}", ::getpid());
      const std::string cmd =
          fmt::format("ip netns add {0} && ip -n {0} route add blackhole {1}/32", netns_, kUnroutableIp);
      if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("cannot create the network namespace: " + cmd);
    }
    return netns_;
  }
  ~Lab()
  {
    if (!netns_.empty())
      (void)std::system(fmt::format("ip netns delete {}", netns_).c_str());
    server_.reset();
    datapath_.reset();
    (void)kernel::Datapath::uninstall(pin_root_);
  }
  Lab(const Lab &) = delete;
  Lab &operator=(const Lab &) = delete;
  kernel::PinnedMaps &maps() { return datapath_->maps(); }
  const bench::CgroupTree &tree() const { return tree_; }
  unsigned short port() const { return port_; }

 private:
  bench::CgroupTree tree_;
  std::string pin_root_;
  std::unique_ptr<kernel::Datapath> datapath_;
  std::unique_ptr<bench::Child> server_;
  unsigned short port_ = 0;
  std::string netns_;
};

}  // namespace riskgate::bench::blocklab
