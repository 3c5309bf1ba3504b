#include "connection_loop.h"

#include <riskgate/common/errors.h>
#include <riskgate/common/thread_name.h>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace riskgate::admin {

namespace {

constexpr std::uint64_t kListenKey = 0, kStopKey = 1, kFirstConnectionKey = 2;  // epoll keys
// After accept fails for want of fds (EMFILE, ENFILE, ENOBUFS) the listening socket stays readable:
// a pause instead of a busy loop, while the connections it has go on being served.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// Accepts per wakeup, so that a flood of connects cannot starve the connections already open.
constexpr int kAcceptBurst = 64;

bool would_block(int err)
{
  return err == EAGAIN || err == EWOULDBLOCK;
}

}  // namespace

Result<std::unique_ptr<ConnectionLoop>> ConnectionLoop::start(int listen_fd, std::string thread_name,
                                                              LoopLimits limits, Handler handler, Adopt adopt)
{
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  const auto watch = [epoll_fd](int fd, std::uint64_t key) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = key;
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0;
  };
  const int flags = fcntl(listen_fd, F_GETFL);
  if (stop_fd < 0 || epoll_fd < 0 || flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
      !watch(listen_fd, kListenKey) || !watch(stop_fd, kStopKey)) {
    const std::string why = errno_text();
    for (int fd : {listen_fd, stop_fd, epoll_fd})
      if (fd >= 0)
        ::close(fd);
    return make_error(fmt::format("{} event loop: {}", thread_name, why));
  }
  return std::unique_ptr<ConnectionLoop>(new ConnectionLoop(
      listen_fd, stop_fd, epoll_fd, std::move(thread_name), limits, std::move(handler), std::move(adopt)));
}

ConnectionLoop::ConnectionLoop(int listen_fd, int stop_fd, int epoll_fd, std::string thread_name,
                               LoopLimits limits, Handler handler, Adopt adopt)
    : listen_fd_(listen_fd),
      stop_fd_(stop_fd),
      epoll_fd_(epoll_fd),
      limits_(limits),
      handler_(std::move(handler)),
      adopt_(std::move(adopt)),
      thread_name_(std::move(thread_name)),
      next_key_(kFirstConnectionKey)
{
  thread_ = std::thread([this] {
    name_this_thread(thread_name_);
    run();
  });
}

ConnectionLoop::~ConnectionLoop()
{
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  for (auto &[key, connection] : connections_) ::close(connection.fd);
  for (int fd : {listen_fd_, stop_fd_, epoll_fd_}) ::close(fd);
}

void ConnectionLoop::run()
{
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, 64, close_overdue());
    if (n < 0 && errno != EINTR) {
      fmt::print(stderr, "riskgated: {} stopped: epoll_wait: {}\n", thread_name_, errno_text());
      return;
    }
    for (int i = 0; i < n; ++i) {
      const std::uint64_t key = events[i].data.u64;
      if (key == kStopKey)
        return;
      if (key == kListenKey) {
        accept_waiting();
        continue;
      }
      // A connection closed earlier in this batch (evicted, or overdue) has left the map.
      const auto it = connections_.find(key);
      if (it == connections_.end())
        continue;
      if (it->second.answered)
        write_reply(it);
      else
        read_request(it);
    }
  }
}

int ConnectionLoop::close_overdue()
{
  const auto now = Clock::now();
  if (accepting_again_at_ && *accepting_again_at_ <= now)
    pause_accepting(false);
  std::optional<Clock::time_point> next = accepting_again_at_;
  for (auto it = connections_.begin(); it != connections_.end();) {
    const auto deadline = it->second.deadline;
    if (deadline <= now) {
      drop(it++);
      continue;
    }
    next = next ? std::min(*next, deadline) : deadline;
    ++it;
  }
  if (!next)
    return -1;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*next - now).count());
}

void ConnectionLoop::accept_waiting()
{
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (!would_block(errno))
        pause_accepting(true);
      return;
    }
    if (connections_.size() >= limits_.max_connections)
      drop(connections_.begin());
    const std::uint64_t key = next_key_++;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = key;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) < 0) {
      ::close(fd);
      continue;
    }
    connections_.emplace(key, Connection{fd, Clock::now() + limits_.request_deadline, {}, {}});
  }
}

void ConnectionLoop::pause_accepting(bool paused)
{
  epoll_event event{};
  event.events = paused ? 0u : static_cast<std::uint32_t>(EPOLLIN);
  event.data.u64 = kListenKey;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &event);
  accepting_again_at_ = paused ? std::optional(Clock::now() + kAcceptPause) : std::nullopt;
}

void ConnectionLoop::read_request(Connections::iterator it)
{
  Connection &connection = it->second;
  Input input = Input::partial;
  char buffer[4096];
  for (;;) {
    const std::size_t room = limits_.max_request - connection.received.size();
    if (room == 0) {
      input = Input::full;
      break;
    }
    const ssize_t n = ::recv(connection.fd, buffer, std::min(room, sizeof buffer), 0);
    if (n > 0) {
      connection.received.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      input = Input::ended;
      break;
    } else if (would_block(errno)) {
      break;
    } else if (errno != EINTR) {  // reset by the peer: nobody to answer
      close(it);
      return;
    }
  }
  if (auto reply = handler_(connection.received, input))
    answer(it, std::move(*reply));
  else if (input != Input::partial)
    close(it);
}

void ConnectionLoop::answer(Connections::iterator it, Answer answer)
{
  Connection &connection = it->second;
  if (answer.hand_over) {
    // Out of the epoll set before the new owner may close the fd (and the number be reused).
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd, nullptr);
    const int fd = connection.fd;
    connections_.erase(it);
    adopt_(fd);
    return;
  }
  connection.answered = true;
  connection.reply = std::move(answer.reply);
  connection.deadline = Clock::now() + limits_.reply_deadline;
  write_reply(it);
}

void ConnectionLoop::write_reply(Connections::iterator it)
{
  Connection &connection = it->second;
  while (connection.sent < connection.reply.size()) {
    const ssize_t n = ::send(connection.fd, connection.reply.data() + connection.sent,
                             connection.reply.size() - connection.sent, MSG_NOSIGNAL);
    if (n > 0) {
      connection.sent += static_cast<std::size_t>(n);
    } else if (n < 0 && would_block(errno)) {
      epoll_event event{};
      event.events = EPOLLOUT;
      event.data.u64 = it->first;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection.fd, &event);
      return;
    } else if (n == 0 || errno != EINTR) {
      break;  // the peer is gone
    }
  }
  close(it);
}

void ConnectionLoop::drop(Connections::iterator it)
{
  // A reset rather than a FIN: no TIME_WAIT is left behind for each slow client given up on, which a
  // flood of them would otherwise pile up by the ten thousand.
  const linger reset{1, 0};
  setsockopt(it->second.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(it);
}

void ConnectionLoop::close(Connections::iterator it)
{
  ::close(it->second.fd);  // also leaves the epoll set: the fd is nowhere else
  connections_.erase(it);
}

}  // namespace riskgate::admin
