#include "support/slow_clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace riskgate::test {

namespace {

using Clock = std::chrono::steady_clock;

struct Client {
  int fd = -1;
  bool opened = false;        // connected and sent the opening
  Clock::time_point since{};  // connect started, then opening sent; when to reconnect while closed
  Clock::time_point next_byte{};
};

void close_client(Client &client, Clock::time_point reconnect_at)
{
  ::close(client.fd);
  client = Client{};
  client.since = reconnect_at;
}

// A non-blocking connect under way (or already done), or -1 (for a unix socket, also a full backlog).
int start_connect(const Address &to)
{
  const int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&to.storage), to.length) < 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Address loopback(std::uint16_t port)
{
  Address address;
  auto *in = reinterpret_cast<sockaddr_in *>(&address.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.length = sizeof(sockaddr_in);
  return address;
}

Address unix_socket(const std::string &path)
{
  Address address;
  auto *un = reinterpret_cast<sockaddr_un *>(&address.storage);
  un->sun_family = AF_UNIX;
  std::strncpy(un->sun_path, path.c_str(), sizeof un->sun_path - 1);
  address.length = sizeof(sockaddr_un);
  return address;
}

SlowClients::SlowClients(Address to, std::size_t count, std::string opening,
                         std::chrono::milliseconds trickle)
    : to_(to), count_(count), opening_(std::move(opening)), trickle_(trickle), thread_([this] { run(); })
{
}

SlowClients::~SlowClients()
{
  stop();
}

void SlowClients::stop()
{
  stopping_ = true;
  if (thread_.joinable())
    thread_.join();
}

void SlowClients::run()
{
  std::vector<Client> clients(count_);
  std::vector<pollfd> polled(count_);
  while (!stopping_) {
    auto now = Clock::now();
    for (std::size_t i = 0; i < count_; ++i) {
      Client &c = clients[i];
      if (c.fd < 0 && c.since <= now && (c.fd = start_connect(to_)) >= 0)
        c.since = now;
      polled[i] = {c.fd, static_cast<short>(c.opened ? POLLIN : POLLOUT), 0};
    }
    ::poll(polled.data(), polled.size(), 20);
    now = Clock::now();
    for (std::size_t i = 0; i < count_; ++i) {
      Client &c = clients[i];
      if (c.fd < 0)
        continue;
      const short events = polled[i].revents;
      if (!c.opened && (events & (POLLOUT | POLLERR | POLLHUP))) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0 || ::send(c.fd, opening_.data(), opening_.size(), MSG_NOSIGNAL) < 0) {
          close_client(c, now + trickle_);  // refused: not one the server held
          continue;
        }
        c.opened = true;
        c.since = now;
        c.next_byte = now + trickle_;
        ++connected_;
      } else if (c.opened) {
        bool gave_up = events != 0;  // any answer (data, EOF, reset): the server gave up on the request
        if (!gave_up && now >= c.next_byte) {
          gave_up = ::send(c.fd, "a", 1, MSG_NOSIGNAL) != 1;
          c.next_byte += trickle_;
        }
        if (!gave_up)
          continue;
        const long held = std::chrono::duration_cast<std::chrono::milliseconds>(now - c.since).count();
        longest_ms_ = std::max(longest_ms_.load(), held);
        --connected_;
        ++closed_;
        close_client(c, now + trickle_);
      }
    }
  }
  for (auto &c : clients)
    if (c.fd >= 0)
      ::close(c.fd);
  connected_ = 0;
}

Reply exchange(const Address &to, const std::string &request)
{
  const auto started = Clock::now();
  Reply reply;
  const int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{1, 0};  // SO_SNDTIMEO bounds the connect too
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&to.storage), to.length) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()) &&
      ::shutdown(fd, SHUT_WR) == 0) {
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
      reply.text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  reply.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  return reply;
}

Reply http_get(std::uint16_t port, const std::string &target)
{
  return exchange(loopback(port), "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
}

HealthProbes probe_health(pid_t server, std::uint16_t port, std::chrono::milliseconds duration,
                          std::chrono::milliseconds within)
{
  HealthProbes probes;
  for (const auto until = Clock::now() + duration; Clock::now() < until; ++probes.count) {
    const std::string target = probes.count % 2 ? "/readyz" : "/healthz";
    const auto reply = http_get(port, target);
    if (!reply.text.starts_with("HTTP/1.1 200 OK\r\n") || reply.took >= within)
      probes.failures.push_back(target + " after " + std::to_string(reply.took.count()) +
                                " ms: " + reply.text.substr(0, reply.text.find("\r\n")));
    probes.most_open = std::max(probes.most_open, open_connections(server, port));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return probes;
}

std::string HealthProbes::summary() const
{
  return std::to_string(failures.size()) + " of " + std::to_string(count) + " probes failed" +
         (failures.empty() ? "" : ", the first: " + failures.front());
}

std::size_t open_connections(pid_t pid, std::uint16_t port)
{
  std::set<std::string> inodes;  // of the process's sockets
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string link = std::filesystem::read_symlink(entry.path(), ec).string();
    if (link.starts_with("socket:["))
      inodes.insert(link.substr(8, link.size() - 9));
  }
  std::set<std::string> counted;  // by inode: a table read while it changes may list one twice
  for (const char *table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the column names
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const auto local_port = std::stoul(local.substr(local.rfind(':') + 1), nullptr, 16);
      if (local_port == port && state != "0A" && inodes.count(inode))  // 0A: the listening socket
        counted.insert(inode);
    }
  }
  return counted.size();
}

bool raise_fd_limit(std::size_t at_least)
{
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return false;
  if (limit.rlim_cur >= at_least)
    return true;
  limit.rlim_cur = at_least;
  limit.rlim_max = std::max<rlim_t>(limit.rlim_max, at_least);
  return ::setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

}  // namespace riskgate::test
