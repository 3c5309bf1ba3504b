// Transparent mode end to end: a workload in a governed child cgroup connects to a service address;
// the datapath's connect4 redirects it to the proxy, which recovers the original destination with
// getsockopt(SO_ORIGINAL_DST), asks the hook, which resolves the identity owning that destination,
// and forwards there (a real nginx). Without the datapath the same listener answers 502 "original
// destination unknown" instead of guessing.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include <riskgate/common/net.h>
#include <riskgate/identity/destinations.h>
#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/pinned_maps.h>
#include <riskgate/proxy/proxy.h>
#include "support/kernel_env.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::test;

namespace {

constexpr IdentityId kClient = 21, kServer = 22;
const char *const kServerIp = "127.0.0.22";

// The registry as the datapath has it below: the server is known by its address.
identity::RegistrySnapshot server_registry()
{
  identity::RegistrySnapshot snapshot;
  snapshot.identities = {{kClient, "client", "", {}, {}},
                         {kServer, "server", "", {}, {*net::parse_prefix(kServerIp)}}};
  snapshot.by_id = {{kClient, 0}, {kServer, 1}};
  return snapshot;
}

// Reports what it saw on a pipe: "<destination> <upstream name> <service> <destination identity>\n"
// per request, the identity as the agent's Gate resolves it.
class ReportingHook final : public RequestHook {
 public:
  explicit ReportingHook(int fd) : fd_(fd) {}
  void on_request(const RequestView &r, HookVerdict &v) override
  {
    const std::string line =
        fmt::format("{} {} {} {}\n", net::endpoint_string(r.destination), r.upstream_name, r.service,
                    destinations_.of(r.service, r.destination).name);
    [[maybe_unused]] auto n = ::write(fd_, line.data(), line.size());
    v.decision_id = 77;
  }
  void on_complete(const RequestView &, const ExchangeResult &) override {}

 private:
  int fd_;
  identity::DestinationTable destinations_{{{"transparent", "", std::nullopt}}, server_registry(), {}};
};

// The proxy runs in a child process placed in `cgroup` (the getsockopt program answers for sockets
// of that cgroup). It reports its port and then every hook call on `report`, and stops when `stop`
// reaches EOF.
pid_t spawn_proxy(const std::string &cgroup, int report, int stop, int stop_write)
{
  const pid_t pid = ::fork();
  if (pid != 0)
    return pid;
  ::close(stop_write);  // EOF on `stop` must mean the test closed its end
  if (!cgroup.empty())
    std::ofstream(cgroup + "/cgroup.procs") << ::getpid();
  ReportingHook hook(report);
  proxy::ProxyConfig config;
  config.workers = 1;
  config.listeners.push_back({"transparent", "127.0.0.1:0", "", true});
  auto created = proxy::Proxy::create(config, hook);
  if (!created.ok() || !(*created)->start().ok())
    ::_exit(1);
  const std::uint16_t port = (*created)->listen_port(0);
  [[maybe_unused]] auto n = ::write(report, &port, sizeof port);
  char byte = 0;
  while (::read(stop, &byte, 1) > 0) {
  }
  (*created)->stop();
  ::_exit(0);
}

// A client in `cgroup` that sends one request to ip:port and reports the answer on `out`.
pid_t spawn_client(const std::string &cgroup, const std::string &ip, std::uint16_t port, int out,
                   int stop_write)
{
  const pid_t pid = ::fork();
  if (pid != 0)
    return pid;
  ::close(stop_write);
  std::ofstream(cgroup + "/cgroup.procs") << ::getpid();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
    ::_exit(2);
  const std::string request = "GET / HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n";
  [[maybe_unused]] auto sent = ::send(fd, request.data(), request.size(), 0);
  char buf[4096];
  ssize_t n = 0;
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 3000) > 0 && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    [[maybe_unused]] auto w = ::write(out, buf, static_cast<std::size_t>(n));
  ::_exit(0);
}

std::string read_all(int fd)
{
  std::string out;
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  ssize_t n = 0;
  while (::poll(&p, 1, 5000) > 0 && (n = ::read(fd, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  return out;
}

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe()
  {
    close_read();
    close_write();
  }
  void close_read()
  {
    if (fds[0] >= 0)
      ::close(fds[0]);
    fds[0] = -1;
  }
  void close_write()
  {
    if (fds[1] >= 0)
      ::close(fds[1]);
    fds[1] = -1;
  }
};

// The proxy child (in `cgroup`, or in the test's own with ""), once it reported its port. stop() ends
// it (EOF on its stop pipe) and reaps it; so does destruction.
struct ChildProxy {
  explicit ChildProxy(const std::string &cgroup)
  {
    pid = spawn_proxy(cgroup, report.fds[1], stop_pipe.fds[0], stop_pipe.fds[1]);
    report.close_write();
    stop_pipe.close_read();
    REQUIRE(::read(report.fds[0], &port, sizeof port) == sizeof port);
  }
  ~ChildProxy() { stop(); }
  ChildProxy(const ChildProxy &) = delete;
  ChildProxy &operator=(const ChildProxy &) = delete;
  void stop()
  {
    stop_pipe.close_write();
    if (pid > 0)
      ::waitpid(pid, nullptr, 0);
    pid = -1;
  }

  Pipe report, stop_pipe;  // report: port, then one line per hook call
  pid_t pid = -1;
  std::uint16_t port = 0;
};

}  // namespace

TEST_CASE("transparent: a redirected connect is forwarded to its original destination")
{
  NginxUpstream server(kServerIp);
  TempPinDir pins;
  ScopedCgroup proxy_cg("rgt-proxy");
  ScopedCgroup parent("rgt-cg");
  ScopedCgroup client_cg(parent, "client");

  kernel::DatapathConfig dp_config;
  dp_config.pin_root = pins.path();
  dp_config.cgroup = parent.path();
  dp_config.proxy_cgroup = proxy_cg.path();
  auto datapath = kernel::Datapath::start(dp_config);
  REQUIRE_MESSAGE(datapath.ok(), datapath.error());
  auto &maps = (*datapath)->maps();
  REQUIRE(maps.sync_identities({{kClient, "client", {client_cg.id()}, {}},
                                {kServer, "server", {}, {*net::parse_prefix(kServerIp)}}})
              .ok());

  ChildProxy proxy(proxy_cg.path());
  Pipe answer;

  rg_l7_config l7 = *maps.l7_config();
  l7.proxy_port = proxy.port;
  REQUIRE(maps.set_l7_config(l7).ok());
  REQUIRE(maps.put_l7_destination({kServer, server.port(), IPPROTO_TCP}).ok());

  const pid_t client_pid =
      spawn_client(client_cg.path(), kServerIp, server.port(), answer.fds[1], proxy.stop_pipe.fds[1]);
  answer.close_write();
  const std::string response = read_all(answer.fds[0]);
  ::waitpid(client_pid, nullptr, 0);

  char seen[512] = {};
  pollfd p{proxy.report.fds[0], POLLIN, 0};
  REQUIRE(::poll(&p, 1, 2000) == 1);
  const auto got = ::read(proxy.report.fds[0], seen, sizeof seen - 1);
  proxy.stop();

  CHECK(response.find("HTTP/1.1 200 OK") == 0);
  CHECK(response.find("hello world\n") != std::string::npos);
  const std::string destination = fmt::format("{}:{}", kServerIp, server.port());
  CHECK(std::string(seen, got > 0 ? static_cast<std::size_t>(got) : 0) ==
        fmt::format("{} {} transparent server\n", destination, destination));
}

TEST_CASE("transparent: without a redirect the proxy answers 502 instead of guessing a destination")
{
  ChildProxy proxy("");
  const auto out = raw_exchange(proxy.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  proxy.stop();
  CHECK(out.find("HTTP/1.1 502 Bad Gateway") == 0);
  CHECK(out.find(R"("reason":"original destination unknown","decision_id":"77")") != std::string::npos);
}
