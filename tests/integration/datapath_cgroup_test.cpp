// Two workloads in two child cgroups under a governed parent: connect() of a blocked pair gets
// EPERM, an established connection stops within one message of the block, sockets carry the right
// identities on both sides, and an unblock gives the connection back. Also the transparent redirect:
// a connect to an L7-marked destination lands on the proxy, which recovers the original destination
// with getsockopt(SO_ORIGINAL_DST) and the client's identity from the maps.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/events.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"
#include "support/lab.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

constexpr IdentityId kClient = 11, kServer = 12;
const char *const kServerIp = "127.0.0.12";  // the server's address, known to the ipcache

struct Governed : test::GovernedWorkloads {
  std::unique_ptr<kernel::Datapath> datapath;

  explicit Governed(const std::string &proxy_cgroup = "")
  {
    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    config.cgroup = parent.path();
    config.proxy_cgroup = proxy_cgroup;
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    datapath = std::move(*dp);
    auto synced = maps().sync_identities({
        {kClient, "client", {client.id()}, {}},
        {kServer, "server", {server.id()}, {*net::parse_prefix(kServerIp)}},
    });
    REQUIRE_MESSAGE(synced.ok(), synced.error());
  }
  kernel::PinnedMaps &maps() { return datapath->maps(); }
};

std::vector<rg_sock_tag> tags_for_port(kernel::PinnedMaps &maps, unsigned short port)
{
  std::vector<rg_sock_tag> out;
  auto conns = maps.connections();
  REQUIRE(conns.ok());
  for (const auto &tag : *conns)
    if (tag.local_port == port || tag.remote_port == port)
      out.push_back(tag);
  return out;
}

}  // namespace

TEST_CASE("cgroup gate: pair block -> EPERM on connect; established connection stops at the next message")
{
  Governed lab;
  test::Worker server({lab.server.path(), ""});
  test::Worker client({lab.client.path(), ""});
  const unsigned short port = server.listen_echo(kServerIp);

  REQUIRE(client.connect(kServerIp, port) == 0);
  REQUIRE(client.send_echo("hello") == 0);

  SUBCASE("both sides are tagged with the right identities")
  {
    std::vector<rg_sock_tag> tags;
    REQUIRE(test::eventually([&] { return (tags = tags_for_port(lab.maps(), port)).size() == 2; }));
    for (const auto &tag : tags) {
      const bool passive = tag.flags & RG_SOCK_F_PASSIVE;
      CAPTURE(passive);
      CHECK(tag.src_identity == (passive ? kServer : kClient));
      CHECK(tag.dst_identity == (passive ? kClient : kServer));
      CHECK((tag.flags & RG_SOCK_F_GOVERNED) != 0);
      CHECK(tag.cookie != 0);
    }
    // The proxy-facing lookup: the client's source endpoint names its identity.
    kernel::MapPeerIdentity peers(lab.maps());
    const auto local = client.local_endpoint();
    CHECK(peers.peer_identity(local, local, 0) == kClient);
  }

  SUBCASE("a pair block stops the open connection within one message, unblock restores it")
  {
    std::vector<rg_event> events;
    auto reader = kernel::EventReader::open(lab.pins.path(), [&](const rg_event &ev) {
      if (ev.type != RG_EV_SOCK_TAGGED)
        events.push_back(ev);
    });
    REQUIRE(reader.ok());
    REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 77)).ok());
    CHECK(client.send_echo("after-block") == EACCES);
    CHECK(client.connect(kServerIp, port) == EPERM);
    const auto counters = lab.maps().counters();
    REQUIRE(counters.ok());
    CHECK((*counters)[RG_R_MSG_DROP_PAIR] >= 1);
    CHECK((*counters)[RG_R_CONNECT_DENY_PAIR] >= 1);
    // Each enforcement is an event naming the decision that caused it.
    REQUIRE((*reader)->poll(100).ok());
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == RG_EV_MSG_DROP);
    CHECK(events[0].reason == RG_R_MSG_DROP_PAIR);
    CHECK(events[0].decision_id == 77);
    CHECK(events[1].type == RG_EV_CONNECT_DENY);
    CHECK(events[1].reason == RG_R_CONNECT_DENY_PAIR);
    CHECK(events[1].src_identity == kClient);
    CHECK(events[1].dst_identity == kServer);
    CHECK(events[1].dport == port);

    REQUIRE(*lab.maps().pair_blocks().remove({kClient, kServer}));
    CHECK(client.connect(kServerIp, port) == 0);
    CHECK(client.send_echo("again") == 0);
  }

  SUBCASE("an unblock releases the sticky drop of the connection it had stopped")
  {
    REQUIRE(lab.maps().identity_blocks().put(kClient, kernel::block_value(0ms, 78)).ok());
    CHECK(client.send_echo("blocked") == EACCES);
    REQUIRE(*lab.maps().identity_blocks().remove(kClient));
    CHECK(client.send_echo("released") == 0);
  }

  SUBCASE("a connection block hits that connection only")
  {
    std::vector<rg_sock_tag> tags;
    REQUIRE(test::eventually([&] { return (tags = tags_for_port(lab.maps(), port)).size() == 2; }));
    for (const auto &tag : tags)
      if (!(tag.flags & RG_SOCK_F_PASSIVE))
        REQUIRE(lab.maps().connection_blocks().put(tag.cookie, kernel::block_value(0ms, 79)).ok());
    CHECK(client.send_echo("conn-blocked") == EACCES);
    test::Worker other({lab.client.path(), ""});
    CHECK(other.connect(kServerIp, port) == 0);
    CHECK(other.send_echo("other") == 0);
  }

  SUBCASE("an identity block with a TTL ends without userspace")
  {
    REQUIRE(lab.maps().identity_blocks().put(kClient, kernel::block_value(300ms, 80)).ok());
    test::Worker other({lab.client.path(), ""});
    CHECK(other.connect(kServerIp, port) == EPERM);
    std::this_thread::sleep_for(350ms);
    CHECK(other.connect(kServerIp, port) == 0);
    CHECK(other.send_echo("after-ttl") == 0);
  }
}

TEST_CASE("cgroup gate: a trusted pair goes socket-to-socket, and a block still stops it")
{
  Governed lab;
  REQUIRE(lab.maps().put_trusted(kClient, kServer).ok());
  test::Worker server({lab.server.path(), ""});
  test::Worker client({lab.client.path(), ""});
  const unsigned short port = server.listen_echo(kServerIp);

  // Messages of one echo round trip (request and echo) that sk_msg redirected.
  const auto redirected_in_echo = [&](const std::string &message) {
    const auto before = *lab.maps().counters();
    REQUIRE(client.send_echo(message) == 0);
    return (*lab.maps().counters())[RG_R_MSG_REDIRECT] - before[RG_R_MSG_REDIRECT];
  };
  REQUIRE(client.connect(kServerIp, port) == 0);
  CHECK(redirected_in_echo("fast") == 2);
  std::vector<rg_sock_tag> tags;
  REQUIRE(test::eventually([&] { return (tags = tags_for_port(lab.maps(), port)).size() == 2; }));
  for (const auto &tag : tags) CHECK((tag.flags & RG_SOCK_F_FASTPATH) != 0);

  // Trust withdrawn: the open connection goes on as plain TCP, and stays there when trust returns
  // (switching back could reorder bytes); a new connection takes the fast path again.
  REQUIRE(*lab.maps().remove_trusted(kClient, kServer));
  CHECK(redirected_in_echo("withdrawn") == 0);
  REQUIRE(lab.maps().put_trusted(kClient, kServer).ok());
  CHECK(redirected_in_echo("trusted-again") == 0);
  REQUIRE(client.connect(kServerIp, port) == 0);
  CHECK(redirected_in_echo("new-connection") == 2);

  REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 91)).ok());
  CHECK(client.send_echo("fast-blocked") == EACCES);
}

TEST_CASE("cgroup gate: IPv6 connects and tags")
{
  Governed lab;
  REQUIRE(lab.maps().put_ipcache(*net::parse_prefix("::1"), kServer).ok());
  test::Worker server({lab.server.path(), ""});
  test::Worker client({lab.client.path(), ""});
  const unsigned short port = server.listen_echo("::1");

  REQUIRE(client.connect("::1", port) == 0);
  REQUIRE(client.send_echo("v6") == 0);
  std::vector<rg_sock_tag> tags;
  REQUIRE(test::eventually([&] { return (tags = tags_for_port(lab.maps(), port)).size() == 2; }));
  for (const auto &tag : tags) {
    const bool passive = tag.flags & RG_SOCK_F_PASSIVE;
    CHECK(tag.src_identity == (passive ? kServer : kClient));
    CHECK(tag.dst_identity == (passive ? kClient : kServer));
  }
  kernel::MapPeerIdentity peers(lab.maps());
  const auto local = client.local_endpoint();
  CHECK(local.ss_family == AF_INET6);
  CHECK(peers.peer_identity(local, local, 0) == kClient);
  REQUIRE(lab.maps().pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 90)).ok());
  CHECK(client.send_echo("v6-blocked") == EACCES);
  CHECK(client.connect("::1", port) == EPERM);
}

TEST_CASE("cgroup gate: transparent redirect to the proxy with SO_ORIGINAL_DST and the client's identity")
{
  test::ScopedCgroup proxy_cg("rgt-proxy");
  Governed lab(proxy_cg.path());
  test::Worker server({lab.server.path(), ""});
  test::Worker client({lab.client.path(), ""});
  const unsigned short port = server.listen_echo(kServerIp);

  // The "proxy": a process in the proxy cgroup (getsockopt programs run for the socket's cgroup,
  // so its listener must be made there) that accepts one connection and reports its peer and its
  // getsockopt(SO_ORIGINAL_DST) answer.
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  int portpipe[2];
  REQUIRE(::pipe(portpipe) == 0);
  const pid_t proxy = ::fork();
  REQUIRE(proxy >= 0);
  if (proxy == 0) {
    ::alarm(10);  // never outlive a failed test
    std::ofstream(proxy_cg.path() + "/cgroup.procs") << ::getpid();
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener, 8) != 0)
      ::_exit(1);
    ::getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
    const unsigned short p = ntohs(addr.sin_port);
    (void)::write(portpipe[1], &p, sizeof(p));
    const int accepted = ::accept(listener, nullptr, nullptr);
    sockaddr_storage peer{}, dst{};
    len = sizeof(peer);
    ::getpeername(accepted, reinterpret_cast<sockaddr *>(&peer), &len);
    socklen_t dst_len = sizeof(sockaddr_in);
    const int rc = ::getsockopt(accepted, SOL_IP, 80 /* SO_ORIGINAL_DST */, &dst, &dst_len);
    const std::string answer = net::endpoint_string(peer) + " " +
                               (rc == 0 ? net::endpoint_string(dst) : fmt::format("errno-{}", errno));
    (void)::write(pipefd[1], answer.data(), answer.size());
    ::_exit(0);
  }
  ::close(pipefd[1]);
  ::close(portpipe[1]);
  struct Reap {
    pid_t pid;
    ~Reap()
    {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{proxy};
  auto readable = [](int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 5000) == 1;
  };
  unsigned short proxy_port = 0;
  REQUIRE(readable(portpipe[0]));
  REQUIRE(::read(portpipe[0], &proxy_port, sizeof(proxy_port)) == sizeof(proxy_port));
  ::close(portpipe[0]);

  rg_l7_config l7 = *lab.maps().l7_config();
  l7.proxy_port = proxy_port;
  REQUIRE(lab.maps().set_l7_config(l7).ok());
  REQUIRE(lab.maps().put_l7_destination({kServer, port, IPPROTO_TCP}).ok());

  REQUIRE(client.connect(kServerIp, port) == 0);
  char buf[256] = {};
  REQUIRE_MESSAGE(readable(pipefd[0]), "the connect was not redirected to the proxy");
  const ssize_t got = ::read(pipefd[0], buf, sizeof(buf) - 1);
  ::close(pipefd[0]);
  const std::string answer(buf, got > 0 ? static_cast<size_t>(got) : 0);
  const auto space = answer.find(' ');
  REQUIRE(space != std::string::npos);
  CHECK(answer.substr(space + 1) == fmt::format("{}:{}", kServerIp, port));
  auto peer = net::parse_endpoint(answer.substr(0, space));
  REQUIRE(peer.ok());

  // The same answer from the map (any process can ask) and the client's identity.
  auto orig = lab.maps().original_destination(*peer);
  REQUIRE(orig.ok());
  REQUIRE(orig->has_value());
  CHECK(net::endpoint_string(**orig) == fmt::format("{}:{}", kServerIp, port));
  kernel::MapPeerIdentity peers(lab.maps());
  CHECK(peers.peer_identity(*peer, *peer, 0) == kClient);
  CHECK((*lab.maps().counters())[RG_R_CONNECT_REDIRECT] >= 1);
}
