#include <riskgate/identity/https_client.h>
#include <riskgate/common/errors.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <riskgate/identity/encoding.h>

namespace riskgate::identity {
namespace {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  ~Fd()
  {
    if (fd >= 0)
      ::close(fd);
  }
};

// Writing to a connection the server already closed raises SIGPIPE, which would kill the agent:
// block it on this thread for the exchange and discard one that became pending.
class SigpipeBlock {
 public:
  SigpipeBlock()
  {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock()
  {
    if (!was_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock &) = delete;
  SigpipeBlock &operator=(const SigpipeBlock &) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

bool is_ip_literal(const std::string &host)
{
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// Connects with a deadline, then leaves the socket blocking with per-operation timeouts set to
// what is left of the deadline.
Result<void> connect_with_deadline(Fd &sock, const HttpsUrl &url, Clock::time_point deadline)
{
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *found = nullptr;
  const std::string port = std::to_string(url.port);
  if (int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return make_error(fmt::format("resolve {}: {}", url.host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo *ai = found; ai; ai = ai->ai_next) {
    Fd candidate;
    candidate.fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (candidate.fd < 0)
      continue;
    if (::connect(candidate.fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = errno_text();
      continue;
    }
    pollfd pfd{candidate.fd, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) != 1) {
      last_error = "timed out";
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(candidate.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last_error = errno_text(err);
      continue;
    }
    ::fcntl(candidate.fd, F_SETFL, ::fcntl(candidate.fd, F_GETFL) & ~O_NONBLOCK);
    std::swap(sock.fd, candidate.fd);
    return {};
  }
  return make_error(fmt::format("connect {}:{}: {}", url.host, url.port, last_error));
}

void set_timeouts(int fd, Clock::time_point deadline)
{
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
  if (left < 1000)
    left = 1000;
  timeval tv{static_cast<time_t>(left / 1000000), static_cast<suseconds_t>(left % 1000000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string lower(std::string s)
{
  for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<std::string> dechunk(std::string_view body, std::size_t max)
{
  std::string out;
  while (true) {
    const auto eol = body.find("\r\n");
    if (eol == std::string_view::npos)
      return make_error("truncated chunked body");
    std::size_t size = 0;
    const std::string size_text(body.substr(0, eol));
    char *end = nullptr;
    size = std::strtoul(size_text.c_str(), &end, 16);
    if (end == size_text.c_str())
      return make_error("bad chunk size");
    body.remove_prefix(eol + 2);
    if (size == 0)
      return out;
    if (body.size() < size + 2 || out.size() + size > max)
      return make_error(out.size() + size > max ? "body too large" : "truncated chunked body");
    out.append(body.substr(0, size));
    body.remove_prefix(size + 2);
  }
}

}  // namespace

Result<HttpsUrl> parse_https_url(std::string_view url)
{
  constexpr std::string_view scheme = "https://";
  if (url.substr(0, scheme.size()) != scheme)
    return make_error(fmt::format("\"{}\": only https:// URLs are fetched", url));
  url.remove_prefix(scheme.size());
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  HttpsUrl out;
  out.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return make_error("unterminated IPv6 literal in URL");
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    authority.remove_prefix(colon == std::string_view::npos ? authority.size() : colon);
  }
  if (!authority.empty()) {
    if (authority.front() != ':' || authority.size() < 2 || authority.size() > 6 ||
        authority.substr(1).find_first_not_of("0123456789") != std::string_view::npos)
      return make_error("bad port in URL");
    const int port = std::stoi(std::string(authority.substr(1)));
    if (port < 1 || port > 65535)
      return make_error("bad port in URL");
    out.port = static_cast<std::uint16_t>(port);
  }
  if (out.host.empty())
    return make_error("URL has no host");
  return out;
}

Result<HttpsResponse> https_get(const HttpsRequest &request)
{
  const auto deadline = Clock::now() + request.timeout;
  const HttpsUrl &url = request.url;
  const std::string where = fmt::format("GET https://{}:{}{}", url.host, url.port, url.path);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx)
    return make_error(where + ": " + openssl_error("connection closed"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const bool loaded = request.ca_file.empty()
                          ? SSL_CTX_set_default_verify_paths(ctx.get()) == 1
                          : SSL_CTX_load_verify_locations(ctx.get(), request.ca_file.c_str(), nullptr) == 1;
  if (!loaded)
    return make_error(
        fmt::format("{}: load CA {}: {}", where, request.ca_file, openssl_error("connection closed")));

  SigpipeBlock no_sigpipe;
  Fd sock;
  if (auto c = connect_with_deadline(sock, url, deadline); !c)
    return make_error(where + ": " + c.error());
  set_timeouts(sock.fd, deadline);

  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  if (!ssl || SSL_set_fd(ssl.get(), sock.fd) != 1)
    return make_error(where + ": " + openssl_error("connection closed"));
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl.get());
  if (is_ip_literal(url.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
  } else {
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char *>(url.host.c_str()));  // SNI
    X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
  }
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    std::string why = openssl_error("connection closed");
    if (verify != X509_V_OK)
      why = X509_verify_cert_error_string(verify);
    return make_error(fmt::format("{}: TLS handshake: {}", where, why));
  }

  std::string head = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: riskgate\r\n"
      "Connection: close\r\n",
      url.path, url.host);
  if (!request.bearer_token.empty())
    head += "Authorization: Bearer " + request.bearer_token + "\r\n";
  head += "\r\n";
  if (SSL_write(ssl.get(), head.data(), static_cast<int>(head.size())) != static_cast<int>(head.size()))
    return make_error(where + ": write: " + openssl_error("connection closed"));

  const std::size_t limit = request.max_body_bytes + 64 * 1024;  // body + headers
  std::string raw;
  char buf[16384];
  while (true) {
    if (Clock::now() > deadline)
      return make_error(where + ": timed out");
    set_timeouts(sock.fd, deadline);
    const int n = SSL_read(ssl.get(), buf, sizeof buf);
    if (n <= 0) {
      const int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
        break;
      if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
        return make_error(where + ": timed out");
      // Servers that close without close_notify: accept what framing says is complete.
      if (raw.find("\r\n\r\n") != std::string::npos)
        break;
      return make_error(where + ": read: " + openssl_error("connection closed"));
    }
    raw.append(buf, static_cast<std::size_t>(n));
    if (raw.size() > limit)
      return make_error(fmt::format("{}: response larger than {} bytes", where, request.max_body_bytes));
  }

  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos ||
      (raw.compare(0, 9, "HTTP/1.1 ") != 0 && raw.compare(0, 9, "HTTP/1.0 ") != 0))
    return make_error(where + ": malformed HTTP response");
  HttpsResponse response;
  response.status = std::atoi(raw.c_str() + 9);
  bool chunked = false;
  long content_length = -1;
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const auto eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    pos = eol + 2;
    const auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    const std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (name == "transfer-encoding" && lower(value).find("chunked") != std::string::npos)
      chunked = true;
    else if (name == "content-length")
      content_length = std::atol(value.c_str());
  }
  std::string_view body(raw);
  body.remove_prefix(head_end + 4);
  if (chunked) {
    auto decoded = dechunk(body, request.max_body_bytes);
    if (!decoded)
      return make_error(where + ": " + decoded.error());
    response.body = std::move(*decoded);
  } else {
    if (content_length >= 0 && body.size() < static_cast<std::size_t>(content_length))
      return make_error(where + ": truncated body");
    if (content_length >= 0)
      body = body.substr(0, static_cast<std::size_t>(content_length));
    if (body.size() > request.max_body_bytes)
      return make_error(fmt::format("{}: response larger than {} bytes", where, request.max_body_bytes));
    response.body = std::string(body);
  }
  return response;
}

}  // namespace riskgate::identity
