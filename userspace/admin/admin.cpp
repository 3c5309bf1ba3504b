// The admin HTTP port and unix socket, each served by a ConnectionLoop; the client side for riskgatectl.
#include <riskgate/admin/admin.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/net.h>

#include "connection_loop.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <vector>

#include <fmt/format.h>

namespace riskgate::admin {

namespace {

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

// Room for a burst of connects while the loop accepts them: beyond it the kernel drops SYNs, and a
// probe caught in that waits a second for its retransmit.
constexpr int kBacklog = SOMAXCONN;

constexpr std::string_view kPlainText = "text/plain; charset=utf-8";

std::string http_response(std::string_view status, std::string_view type, std::string_view body)
{
  return fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     status, type, body.size(), body);
}

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(std::uint16_t port, const metrics::Registry &registry, Readiness readiness)
      : port_(port), registry_(registry), readiness_(std::move(readiness))
  {
  }
  Result<void> serve(int listen_fd)
  {
    auto loop = ConnectionLoop::start(
        listen_fd, "rg-metrics", LoopLimits{},
        [this](std::string_view received, Input input) { return answer(received, input); });
    if (!loop)
      return make_error(loop.error());
    loop_ = std::move(*loop);
    return {};
  }
  std::uint16_t port() const override { return port_; }

 private:
  std::optional<Answer> answer(std::string_view received, Input input) const
  {
    if (received.find("\r\n\r\n") != std::string_view::npos)
      return Answer{route(received.substr(0, received.find("\r\n")))};
    if (input == Input::partial)
      return std::nullopt;
    if (input == Input::full)
      return Answer{
          http_response("431 Request Header Fields Too Large", kPlainText,
                        fmt::format("riskgated admin: request head over {} bytes\n", received.size()))};
    return Answer{http_response("400 Bad Request", kPlainText, "riskgated admin: incomplete request\n")};
  }

  // `line` is the request line: METHOD SP TARGET SP HTTP-VERSION.
  std::string route(std::string_view line) const
  {
    const auto method_end = line.find(' ');
    const auto target_end =
        method_end == std::string_view::npos ? method_end : line.find(' ', method_end + 1);
    if (target_end == std::string_view::npos || !line.substr(target_end + 1).starts_with("HTTP/"))
      return http_response("400 Bad Request", kPlainText, "riskgated admin: malformed request line\n");
    const std::string_view method = line.substr(0, method_end);
    const std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
    if (method != "GET")
      return http_response("405 Method Not Allowed", kPlainText, "riskgated admin: GET only\n");
    if (target == "/metrics" || target.starts_with("/metrics?"))
      return http_response("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry_.expose());
    if (target == "/healthz")
      return http_response("200 OK", kPlainText, "ok\n");
    if (target == "/readyz") {
      const std::string reason = readiness_ ? readiness_() : std::string();
      return reason.empty() ? http_response("200 OK", kPlainText, "ready\n")
                            : http_response("503 Service Unavailable", kPlainText, reason + "\n");
    }
    return http_response("404 Not Found", kPlainText, "riskgated admin: GET /metrics, /healthz or /readyz\n");
  }

  std::uint16_t port_;
  const metrics::Registry &registry_;
  Readiness readiness_;
  std::unique_ptr<ConnectionLoop> loop_;  // last: its thread stops before the members it uses go
};

// Streaming clients kept at once; one more is told so and closed.
constexpr std::size_t kMaxStreams = 64;

class SocketImpl final : public Socket {
 public:
  explicit SocketImpl(Options options) : options_(std::move(options)) {}
  Result<void> serve(int listen_fd)
  {
    auto loop = ConnectionLoop::start(
        listen_fd, "rg-admin", LoopLimits{.max_connections = 64},
        [this](std::string_view received, Input input) { return answer(received, input); },
        [this](int fd) {
          std::lock_guard lock(mutex_);
          streams_.push_back(fd);
        });
    if (!loop)
      return make_error(loop.error());
    loop_ = std::move(*loop);
    return {};
  }
  ~SocketImpl() override
  {
    loop_.reset();  // no stream is adopted after this
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
  // One JSON line; a peer that stops sending (socat at the end of its input) ends it too.
  std::optional<Answer> answer(std::string_view received, Input input)
  {
    const auto line_end = received.find('\n');
    if (line_end == std::string_view::npos && input == Input::partial)
      return std::nullopt;
    nlohmann::json reply;
    if (line_end == std::string_view::npos && input == Input::full) {
      reply = {{"error", fmt::format("request line over {} bytes", received.size())}};
    } else {
      const auto command = nlohmann::json::parse(received.substr(0, line_end), nullptr, false);
      const auto name = command.is_object() ? command.value("cmd", nlohmann::json()) : nlohmann::json();
      const std::string cmd = name.is_string() ? name.get<std::string>() : "";
      if (cmd == "stream" && stream_room())
        return Answer{{}, true};  // a hand-over, unanswered
      reply = execute(cmd, command);
    }
    return Answer{reply.dump() + "\n"};
  }

  bool stream_room()
  {
    std::lock_guard lock(mutex_);
    return streams_.size() < kMaxStreams;
  }

  nlohmann::json execute(const std::string &cmd, const nlohmann::json &command)
  {
    if (cmd == "stream")
      return {{"error", fmt::format("already {} streaming clients", kMaxStreams)}};
    if (cmd == "status")
      return options_.status ? options_.status() : nlohmann::json::object();
    if (cmd == "explain" && command.contains("id") && command["id"].is_number_unsigned())
      return explain(command["id"].get<std::uint64_t>());
    if (auto handler = options_.commands.find(cmd); handler != options_.commands.end()) {
      try {  // a field of the wrong type (nlohmann's type_error) is the client's error, not a crash
        return handler->second(command);
      } catch (const nlohmann::json::exception &e) {
        return {{"error", fmt::format("{}: {}", cmd, e.what())}};
      }
    }
    return {{"error", "unknown command: send {\"cmd\":\"status\"|\"explain\"|\"stream\"}"}};
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
  std::unique_ptr<ConnectionLoop> loop_;  // last: its thread stops before the members it uses go
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
  // Bounds the connect too: with the agent's backlog full it would otherwise wait for good.
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
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
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) < 0 || ::listen(fd, kBacklog) < 0) {
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
  auto server = std::make_unique<HttpServerImpl>(net::port_of(bound), registry, std::move(readiness));
  if (auto serving = server->serve(fd); !serving)
    return make_error(fmt::format("admin metrics {}: {}", listen, serving.error()));
  return std::unique_ptr<HttpServer>(std::move(server));
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
  if (bound < 0 || ::listen(fd, kBacklog) < 0) {
    const std::string why = errno_text();
    if (fd >= 0)
      ::close(fd);
    return make_error(fmt::format("admin socket {}: {}", options.path, why));
  }
  const std::string socket_path = options.path;
  auto socket = std::make_unique<SocketImpl>(std::move(options));
  if (auto serving = socket->serve(fd); !serving)
    return make_error(fmt::format("admin socket {}: {}", socket_path, serving.error()));
  return std::unique_ptr<Socket>(std::move(socket));
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
