#include <riskgate/proxy/proxy.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/net.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "worker.h"

namespace riskgate::proxy {

Result<sockaddr_storage> parse_address(const std::string &text)
{
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    return make_error(fmt::format("address '{}': expected HOST:PORT", text));
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    host = "0.0.0.0";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo *found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return make_error(fmt::format("address '{}': {}", text, gai_strerror(rc)));
  sockaddr_storage address{};
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return address;
}

namespace {

Result<int> open_listener(sockaddr_storage &address, const std::string &text)
{
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_error(fmt::format("listen {}: socket: {}", text, errno_text()));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const socklen_t len = address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&address), len) != 0 || ::listen(fd, 4096) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(fmt::format("listen {}: {}", text, errno_text(err)));
  }
  socklen_t bound_len = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&address), &bound_len);
  return fd;
}

}  // namespace

Proxy::Proxy(ProxyConfig config, RequestHook &hook) : config_(std::move(config)), hook_(hook) {}

Proxy::~Proxy()
{
  stop();
}

Result<std::unique_ptr<Proxy>> Proxy::create(ProxyConfig config, RequestHook &hook)
{
  if (config.listeners.empty())
    return make_error("proxy: no listener configured");
  if (config.workers == 0)
    config.workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<sockaddr_storage> upstreams;
  for (const auto &u : config.upstreams) {
    auto address = parse_address(u.address);
    if (!address)
      return make_error(fmt::format("upstream '{}': {}", u.name, address.error()));
    upstreams.push_back(*address);
  }
  std::unique_ptr<Proxy> proxy(new Proxy(std::move(config), hook));
  const ProxyConfig &cfg = proxy->config_;
  for (unsigned w = 0; w < cfg.workers; ++w)
    proxy->workers_.push_back(std::make_unique<Worker>(w, cfg, hook));

  for (const auto &l : cfg.listeners) {
    const sockaddr_storage *upstream = nullptr;
    std::string upstream_name;
    if (!l.transparent) {
      for (std::size_t i = 0; i < cfg.upstreams.size(); ++i)
        if (cfg.upstreams[i].name == l.upstream)
          upstream = &upstreams[i];
      if (upstream == nullptr)
        return make_error(fmt::format("listener '{}': no upstream named '{}'", l.service, l.upstream));
      upstream_name = l.upstream;
    }
    auto address = parse_address(l.address);
    if (!address)
      return make_error(fmt::format("listener '{}': {}", l.service, address.error()));
    // One socket per worker on the same port: the kernel spreads connections (SO_REUSEPORT).
    for (auto &worker : proxy->workers_) {
      auto fd = open_listener(*address, l.address);
      if (!fd)
        return make_error(fmt::format("listener '{}': {}", l.service, fd.error()));
      worker->add_listener(*fd, l, upstream, upstream_name);  // port 0 is now the bound port
    }
    proxy->ports_.push_back(net::port_of(*address));
  }
  return proxy;
}

Result<void> Proxy::start()
{
  if (started_)
    return make_error("proxy: already started");
  started_ = true;
  for (auto &w : workers_) {
    if (auto r = w->start(); !r) {
      stop();
      return r;
    }
  }
  return {};
}

void Proxy::stop()
{
  if (stopped_)
    return;
  stopped_ = true;
  for (auto &w : workers_) w->request_stop();
  for (auto &w : workers_) w->join();
}

std::uint16_t Proxy::listen_port(std::size_t index) const
{
  return ports_.at(index);
}

unsigned Proxy::workers() const
{
  return static_cast<unsigned>(workers_.size());
}

std::vector<UpstreamHealth> Proxy::upstream_health() const
{
  std::vector<UpstreamHealth> out;
  for (const auto &w : workers_) w->collect_health(out);
  return out;
}

}  // namespace riskgate::proxy
