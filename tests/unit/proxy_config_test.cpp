// Configuration errors surface from Proxy::create with a clear message, before any thread runs;
// the ring pieces refuse bad sizes.
#include <doctest/doctest.h>

#include <string>

#include <riskgate/common/net.h>
#include <riskgate/proxy/proxy.h>
#include "proxy/ring.h"
#include "support/gateway.h"
#include "support/upstream.h"

using namespace riskgate;

namespace {

class NullHook final : public RequestHook {
 public:
  void on_request(const RequestView &, HookVerdict &) override {}
  void on_complete(const RequestView &, const ExchangeResult &) override {}
};

// The tests' gateway (listener "orders" -> upstream "orders-up", nothing listening there), with the
// listener's address and the upstream name it asks for as given.
proxy::ProxyConfig gateway(const std::string &listen, const std::string &upstream_name)
{
  auto config = test::gateway_config("127.0.0.1:9", 2, listen);
  config.listeners[0].upstream = upstream_name;
  return config;
}

}  // namespace

TEST_CASE("addresses: IPv4, bracketed IPv6, empty host, and clear errors")
{
  auto v4 = proxy::parse_address("127.0.0.1:8080");
  REQUIRE(v4.ok());
  CHECK(net::endpoint_string(*v4) == "127.0.0.1:8080");
  auto v6 = proxy::parse_address("[::1]:443");
  REQUIRE(v6.ok());
  CHECK(net::endpoint_string(*v6) == "[::1]:443");
  auto any = proxy::parse_address(":80");
  REQUIRE(any.ok());
  CHECK(net::endpoint_string(*any) == "0.0.0.0:80");
  auto no_port = proxy::parse_address("127.0.0.1");
  REQUIRE_FALSE(no_port.ok());
  CHECK(no_port.error() == "address '127.0.0.1': expected HOST:PORT");
  CHECK_FALSE(proxy::parse_address("127.0.0.1:http").ok());
  CHECK_FALSE(proxy::parse_address("no.such.host.invalid:80").ok());
}

TEST_CASE("Proxy::create names what is wrong with the configuration")
{
  NullHook hook;
  auto unknown = proxy::Proxy::create(gateway("127.0.0.1:0", "payments"), hook);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error() == "listener 'orders': no upstream named 'payments'");

  auto bad_listen = proxy::Proxy::create(gateway("127.0.0.1", "orders-up"), hook);
  REQUIRE_FALSE(bad_listen.ok());
  CHECK(bad_listen.error().find("listener 'orders': address '127.0.0.1'") == 0);

  auto none = proxy::Proxy::create(proxy::ProxyConfig{}, hook);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error() == "proxy: no listener configured");
}

TEST_CASE("every worker listens on the same port; start and stop without traffic")
{
  NullHook hook;
  auto created = proxy::Proxy::create(gateway("127.0.0.1:0", "orders-up"), hook);
  REQUIRE_MESSAGE(created.ok(), created.error());
  auto &p = *created;
  CHECK(p->workers() == 2);
  CHECK(p->listen_port(0) != 0);
  REQUIRE(p->start().ok());
  CHECK_FALSE(p->start().ok());
  p->stop();
  p->stop();  // idempotent
}

TEST_CASE("a port held by another listener is refused up front")
{
  const test::LoopbackListener other(1);
  NullHook hook;
  const std::string listen = other.address();
  auto taken = proxy::Proxy::create(gateway(listen, "orders-up"), hook);
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error() == "listener 'orders': listen " + listen + ": Address already in use");
}

TEST_CASE("the buffer ring wants a power-of-two count")
{
  proxy::Ring ring;
  REQUIRE(ring.init(8).ok());
  proxy::BufferRing buffers;
  auto bad = buffers.init(ring, 0, 1000, 4096);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "buffer ring: count 1000 must be a power of two <= 32768");
  proxy::BufferRing good;
  CHECK(good.init(ring, 1, 16, 4096).ok());
}
