// The admin HTTP port and unix socket: one accept thread each, short blocking exchanges.
#include <riskgate/admin/admin.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/net.h>
#include <riskgate/common/thread_name.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace riskgate::admin {

namespace {

// Runs `serve(fd)` for each accepted connection on its own thread until destroyed; owns the fds.
class AcceptLoop {
 public:
  AcceptLoop(int listen_fd, std::string thread_name, std::function<void(int)> serve)
      : listen_fd_(listen_fd), stop_fd_(eventfd(0, EFD_CLOEXEC)), serve_(std::move(serve))
  {
    thread_ = std::thread([this, name = std::move(thread_name)] {
      name_this_thread(name);  // the connections' threads inherit it
      run();
    });
  }
  ~AcceptLoop()
  {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_fd_);
  }

 private:
  void run()
  {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR)
        return;
      if (fds[1].revents)
        return;
      if (fds[0].revents & POLLIN) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0)
          continue;
        // A slow or silent client must not hold the admin thread.
        timeval timeout{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        serve_(fd);
      }
    }
  }

  int listen_fd_, stop_fd_;
  std::function<void(int)> serve_;
  std::thread thread_;
};

bool send_all(int fd, std::string_view data)
{
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until `terminator` (or 16 KiB, or the receive timeout).
std::string read_until(int fd, std::string_view terminator)
{
  std::string data;
  char buffer[1024];
  while (data.find(terminator) == std::string::npos && data.size() < 16384) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0)
      break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(int fd, std::uint16_t port, const metrics::Registry &registry, Readiness readiness)
      : port_(port),
        registry_(registry),
        readiness_(std::move(readiness)),
        loop_(fd, "rg-metrics", [this](int client) { serve(client); })
  {
  }
  std::uint16_t port() const override { return port_; }

 private:
  void serve(int fd)
  {
    const std::string request = read_until(fd, "\r\n\r\n");
    const auto line_end = request.find("\r\n");
    const std::string line = request.substr(0, line_end);
    std::string status = "200 OK", type = "text/plain; charset=utf-8", body;
    if (line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?")) {
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = registry_.expose();
    } else if (line.starts_with("GET /healthz ")) {
      body = "ok\n";
    } else if (line.starts_with("GET /readyz ")) {
      const std::string reason = readiness_ ? readiness_() : std::string();
      if (!reason.empty())
        status = "503 Service Unavailable";
      body = reason.empty() ? "ready\n" : reason + "\n";
    } else if (line.starts_with("GET ")) {
      status = "404 Not Found";
      body = "riskgated admin: GET /metrics, /healthz or /readyz\n";
    } else {
      status = "405 Method Not Allowed";
      body = "riskgated admin: GET only\n";
    }
    send_all(fd, fmt::format(
                     "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     status, type, body.size(), body));
    ::close(fd);
  }

  std::uint16_t port_;
  const metrics::Registry &registry_;
  Readiness readiness_;
  AcceptLoop loop_;
};

class SocketImpl final : public Socket {
 public:
  SocketImpl(int fd, Options options)
      : options_(std::move(options)), loop_(fd, "rg-admin", [this](int client) { serve(client); })
  {
  }
  ~SocketImpl() override
  {
    std::lock_guard lock(mutex_);
    for (int fd : streams_) ::close(fd);
    std::error_code ec;
    std::filesystem::remove(options_.path, ec);
  }

  // Called for every decision: the recent ring reuses its strings' capacity and a stream gets the
  // line and its newline in one sendmsg, so nothing is allocated once the ring has filled.
  void publish(std::string_view line) override
  {
    std::lock_guard lock(mutex_);
    if (options_.recent_decisions > 0) {
      if (recent_.size() < options_.recent_decisions)
        recent_.emplace_back(line);
      else
        recent_[recent_next_].assign(line);
      recent_next_ = (recent_next_ + 1) % options_.recent_decisions;
    }
    char newline = '\n';
    iovec parts[2] = {{const_cast<char *>(line.data()), line.size()}, {&newline, 1}};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = 2;
    for (auto it = streams_.begin(); it != streams_.end();) {
      if (::sendmsg(*it, &message, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(line.size() + 1)) {
        ::close(*it);
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  void serve(int fd)
  {
    const std::string text = read_until(fd, "\n");
    const auto command = nlohmann::json::parse(text.substr(0, text.find('\n')), nullptr, false);
    const std::string cmd = command.is_object() ? command.value("cmd", "") : "";
    nlohmann::json reply;
    if (cmd == "status") {
      reply = options_.status ? options_.status() : nlohmann::json::object();
    } else if (cmd == "explain" && command.contains("id") && command["id"].is_number_unsigned()) {
      reply = explain(command["id"].get<std::uint64_t>());
    } else if (cmd == "stream") {
      std::lock_guard lock(mutex_);
      streams_.push_back(fd);
      return;
    } else if (auto handler = options_.commands.find(cmd); handler != options_.commands.end()) {
      reply = handler->second(command);
    } else {
      reply = {{"error", "unknown command: send {\"cmd\":\"status\"|\"explain\"|\"stream\"}"}};
    }
    send_all(fd, reply.dump() + "\n");
    ::close(fd);
  }

  nlohmann::json explain(std::uint64_t id)
  {
    std::lock_guard lock(mutex_);
    for (std::size_t age = 1; age <= recent_.size(); ++age) {  // newest first
      const auto &line = recent_[(recent_next_ + recent_.size() - age) % recent_.size()];
      auto object = nlohmann::json::parse(line, nullptr, false);
      if (object.is_object() && object.value("kind", "") == "decision" &&
          object.value("id", std::uint64_t{0}) == id)
        return object;
    }
    return {{"error", fmt::format("decision {} is not among the {} most recent", id, recent_.size())}};
  }

  Options options_;
  std::mutex mutex_;
  std::vector<std::string> recent_;  // a ring of the latest lines; recent_next_ is the oldest once full
  std::size_t recent_next_ = 0;
  std::vector<int> streams_;
  AcceptLoop loop_;  // last: its thread stops before the members it uses are destroyed
};

Result<int> connect_unix(const std::string &path)
{
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return make_error(fmt::format("admin socket path too long: {}", path));
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_error(fmt::format("socket: {}", errno_text()));
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) {
    const std::string why = errno_text();
    ::close(fd);
    return make_error(fmt::format("connect {}: {}", path, why));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string &listen,
                                                      const metrics::Registry &registry, Readiness readiness)
{
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return make_error(fmt::format("admin metrics address \"{}\": expected HOST:PORT", listen));
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo *found = nullptr;
  if (getaddrinfo(host.c_str(), listen.substr(colon + 1).c_str(), &hints, &found) != 0 || !found)
    return make_error(fmt::format("admin metrics address \"{}\": expected a numeric HOST:PORT", listen));
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) < 0 || ::listen(fd, 16) < 0) {
    const std::string why = errno_text();
    freeaddrinfo(found);
    if (fd >= 0)
      ::close(fd);
    return make_error(fmt::format("admin metrics listen {}: {}", listen, why));
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &length);
  const std::uint16_t port = net::port_of(bound);
  return std::unique_ptr<HttpServer>(new HttpServerImpl(fd, port, registry, std::move(readiness)));
}

Result<std::unique_ptr<Socket>> Socket::start(Options options)
{
  namespace fs = std::filesystem;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.path.size() >= sizeof addr.sun_path)
    return make_error(fmt::format("admin socket path too long: {}", options.path));
  std::memcpy(addr.sun_path, options.path.c_str(), options.path.size());
  std::error_code ec;
  const fs::path path(options.path);
  if (path.has_parent_path())
    fs::create_directories(path.parent_path(), ec);
  // A socket file left by a killed agent is stale only if nobody answers on it.
  if (fs::exists(path, ec)) {
    if (auto live = connect_unix(options.path); live.ok()) {
      ::close(*live);
      return make_error(
          fmt::format("admin socket {} is in use: is another riskgated running?", options.path));
    }
    fs::remove(path, ec);
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Bind under a umask so the socket is never reachable by others, not even for an instant.
  const mode_t old_mask = umask(0177);
  const int bound = fd < 0 ? -1 : ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  umask(old_mask);
  if (bound < 0 || ::listen(fd, 16) < 0) {
    const std::string why = errno_text();
    if (fd >= 0)
      ::close(fd);
    return make_error(fmt::format("admin socket {}: {}", options.path, why));
  }
  return std::unique_ptr<Socket>(new SocketImpl(fd, std::move(options)));
}

Result<nlohmann::json> request(const std::string &socket_path, const nlohmann::json &command)
{
  auto fd = connect_unix(socket_path);
  if (!fd)
    return make_error(fd.error());
  timeval timeout{5, 0};
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string reply;
  if (send_all(*fd, command.dump() + "\n"))
    reply = read_until(*fd, "\n");
  ::close(*fd);
  auto parsed = nlohmann::json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
  if (parsed.is_discarded())
    return make_error(fmt::format("{}: no valid reply from riskgated", socket_path));
  if (parsed.is_object() && parsed.contains("error"))
    return make_error(parsed["error"].get<std::string>());
  return parsed;
}

Result<void> stream(const std::string &socket_path, const std::function<bool(const std::string &)> &on_line)
{
  auto fd = connect_unix(socket_path);
  if (!fd)
    return make_error(fd.error());
  if (!send_all(*fd, "{\"cmd\":\"stream\"}\n")) {
    ::close(*fd);
    return make_error(fmt::format("{}: riskgated closed the stream", socket_path));
  }
  std::string pending;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(*fd, buffer, sizeof buffer, 0);
    if (n <= 0)
      break;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!on_line(line)) {
        ::close(*fd);
        return {};
      }
    }
  }
  ::close(*fd);
  return make_error(fmt::format("{}: riskgated closed the stream (stopped or restarted)", socket_path));
}

}  // namespace riskgate::admin
