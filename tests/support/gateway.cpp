#include "support/gateway.h"

#include <stdexcept>
#include <utility>

#include <fmt/format.h>

namespace riskgate::test {

proxy::ProxyConfig gateway_config(const std::string &upstream, unsigned workers, const std::string &listen)
{
  proxy::ProxyConfig config;
  config.workers = workers;
  config.listeners.push_back({"orders", listen, "orders-up", false});
  config.upstreams.push_back({"orders-up", upstream});
  return config;
}

RunningProxy::RunningProxy(proxy::ProxyConfig config, RequestHook &hook)
{
  auto created = proxy::Proxy::create(std::move(config), hook);
  if (!created.ok())
    throw std::runtime_error("proxy: " + created.error());
  auto started = (*created)->start();
  if (!started.ok())
    throw std::runtime_error("proxy start: " + started.error());
  proxy_ = std::move(*created);
  port_ = proxy_->listen_port(0);
}

RunningProxy::~RunningProxy()
{
  proxy_->stop();
}

std::string RunningProxy::url(const std::string &path) const
{
  return fmt::format("http://127.0.0.1:{}{}", port_, path);
}

}  // namespace riskgate::test
