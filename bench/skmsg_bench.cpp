// sk_msg fast path: 64-byte request/response round trip between two local processes (one client,
// one echo server, both on CPU 0), in the same run: plain TCP (no riskgate program on their cgroup),
// governed (every message through rg_msg_gate's block checks, passed to TCP), and riskgate's
// redirect for a trusted pair (block checks, then socket-to-socket), the latter also with 10k
// entries in each block map. Usage (root):
// build/bench/bench_skmsg_bench [round_trips]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

#include "bench_lab.h"
#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/pinned_maps.h>

using namespace riskgate;

namespace {

constexpr std::size_t kMessage = 64;

sockaddr_in address(const char *ip, unsigned short port)
{
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &addr.sin_addr);
  return addr;
}

bool read_full(int fd, char *buf, std::size_t n)
{
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r <= 0)
      return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// Echo server on ip (port chosen by the kernel, written to `port_pipe`).
int echo_server(const char *ip, int port_pipe)
{
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = address(ip, 0);
  socklen_t len = sizeof(addr);
  if (::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || ::listen(listener, 4) != 0)
    return 1;
  ::getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
  const unsigned short port = ntohs(addr.sin_port);
  (void)::write(port_pipe, &port, sizeof(port));
  const int conn = ::accept(listener, nullptr, nullptr);
  const int one = 1;
  ::setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char buf[kMessage];
  while (read_full(conn, buf, kMessage))
    if (::send(conn, buf, kMessage, 0) != static_cast<ssize_t>(kMessage))
      break;
  return 0;
}

struct Figures {
  double median_us, p99_us;
};

// One client/server pair in the given cgroups; returns round-trip percentiles.
Figures measure(const bench::CgroupTree &tree, const std::string &client_cg, const std::string &server_cg,
                const char *server_ip, int round_trips)
{
  int port_pipe[2], result_pipe[2];
  if (::pipe(port_pipe) != 0 || ::pipe(result_pipe) != 0)
    std::exit(1);
  bench::Child server(tree.path(server_cg), 0, [&] { return echo_server(server_ip, port_pipe[1]); });
  unsigned short port = 0;
  if (::read(port_pipe[0], &port, sizeof(port)) != sizeof(port))
    std::exit(1);
  bench::Child client(tree.path(client_cg), 0, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto addr = address(server_ip, port);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
      return 1;
    char buf[kMessage] = {};
    std::vector<double> rtt;
    rtt.reserve(static_cast<std::size_t>(round_trips));
    for (int i = 0; i < round_trips + 1000; ++i) {
      const std::uint64_t t0 = bench::now_ns();
      if (::send(fd, buf, kMessage, 0) != static_cast<ssize_t>(kMessage) || !read_full(fd, buf, kMessage))
        return 2;
      if (i >= 1000)  // warm-up
        rtt.push_back(static_cast<double>(bench::now_ns() - t0) / 1000.0);
    }
    const Figures f{bench::percentile(rtt, 50), bench::percentile(rtt, 99)};
    (void)::write(result_pipe[1], &f, sizeof(f));
    return 0;
  });
  Figures f{};
  if (::read(result_pipe[0], &f, sizeof(f)) != sizeof(f)) {
    std::fprintf(stderr, "client failed (status %d)\n", client.wait());
    std::exit(1);
  }
  for (int fd : {port_pipe[0], port_pipe[1], result_pipe[0], result_pipe[1]}) ::close(fd);
  return f;
}

}  // namespace

int main(int argc, char **argv)
{
  const int round_trips = argc > 1 ? std::atoi(argv[1]) : 20000;
  bench::CgroupTree tree("skmsg", {"plain", "gov", "gov/client", "gov/server"});
  const std::string pin_root = fmt::format("/sys/fs/bpf/rgt-bench-skmsg-{}", ::getpid());
  int rc = 0;
  {
    kernel::DatapathConfig config;
    config.pin_root = pin_root;
    config.cgroup = tree.path("gov");
    auto dp = kernel::Datapath::start(config);
    if (!dp) {
      std::fprintf(stderr, "%s\n", dp.error().c_str());
      (void)kernel::Datapath::uninstall(pin_root);
      return 1;
    }
    kernel::PinnedMaps &maps = (*dp)->maps();
    const IdentityId client = 31, server = 32;
    if (!maps.sync_identities(
                 {{client, "client", {tree.id("gov/client")}, {}},
                  {server, "server", {tree.id("gov/server")}, {*net::parse_prefix("127.0.0.32")}}})
             .ok())
      rc = 1;

    const Figures plain = measure(tree, "plain", "plain", "127.0.0.32", round_trips);
    const Figures governed = measure(tree, "gov/client", "gov/server", "127.0.0.32", round_trips);
    (void)maps.put_trusted(client, server);
    const Figures redirect = measure(tree, "gov/client", "gov/server", "127.0.0.32", round_trips);
    // The same with 10k entries in every block map the messages are checked against (none matching).
    const auto never = kernel::block_value(std::chrono::milliseconds(0), 1);
    for (std::uint64_t i = 0; i < 10000 && rc == 0; ++i) {
      const auto id = static_cast<IdentityId>(1000 + i);
      if (!maps.identity_blocks().put(id, never).ok() || !maps.pair_blocks().put({id, server}, never).ok() ||
          !maps.connection_blocks().put(0xffff000000000000ull + i, never).ok())
        rc = 1;
    }
    const Figures loaded = measure(tree, "gov/client", "gov/server", "127.0.0.32", round_trips);
    auto counters = maps.counters();

    std::printf("skmsg_bench: 64-byte request/response, %d round trips, client and server on CPU 0\n",
                round_trips);
    std::printf("  plain TCP                          median %6.1f us  p99 %6.1f us\n", plain.median_us,
                plain.p99_us);
    std::printf("  governed (sk_msg checks, pass)     median %6.1f us  p99 %6.1f us\n", governed.median_us,
                governed.p99_us);
    std::printf("  trusted pair: checks + redirect    median %6.1f us  p99 %6.1f us\n", redirect.median_us,
                redirect.p99_us);
    std::printf("  same, 10k entries per block map    median %6.1f us  p99 %6.1f us\n", loaded.median_us,
                loaded.p99_us);
    std::printf("  redirect / plain TCP               %.2fx (target <= 0.70x)\n",
                redirect.median_us / plain.median_us);
    if (counters)
      std::printf("  (messages redirected: %llu, passed: %llu)\n",
                  static_cast<unsigned long long>((*counters)[RG_R_MSG_REDIRECT]),
                  static_cast<unsigned long long>((*counters)[RG_R_MSG_PASS]));
  }
  (void)kernel::Datapath::uninstall(pin_root);
  return rc;
}
