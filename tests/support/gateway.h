// The proxy in the test process, as the proxy tests start it: the gateway configuration they share
// and a started proxy that stops when the test ends, also when it fails.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <riskgate/proxy/proxy.h>

namespace riskgate::test {

// One gateway listener "orders" on `listen` in front of one upstream "orders-up" at `upstream`.
proxy::ProxyConfig gateway_config(const std::string &upstream, unsigned workers = 2,
                                  const std::string &listen = "127.0.0.1:0");

// Forwards every request as decision 7 (x-riskgate-decision: 7), remembering nothing: what the
// proxy does around the hook is all a test sees.
class ForwardingHook final : public RequestHook {
 public:
  void on_request(const RequestView &, HookVerdict &verdict) override
  {
    verdict.decision_id = 7;
    verdict.add_header("x-riskgate-decision", "7");
  }
  void on_complete(const RequestView &, const ExchangeResult &) override {}
};

// Proxy::create and start, or an exception with the proxy's error; stop() on destruction.
class RunningProxy {
 public:
  RunningProxy(proxy::ProxyConfig config, RequestHook &hook);
  ~RunningProxy();
  RunningProxy(const RunningProxy &) = delete;
  RunningProxy &operator=(const RunningProxy &) = delete;
  proxy::Proxy *operator->() const { return proxy_.get(); }
  std::uint16_t port() const { return port_; }     // the first listener's bound port
  std::string url(const std::string &path) const;  // http://127.0.0.1:<port><path>

 private:
  std::unique_ptr<proxy::Proxy> proxy_;
  std::uint16_t port_ = 0;
};

}  // namespace riskgate::test
