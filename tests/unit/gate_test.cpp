// The Gate as the proxy calls it: identity from the (fake) kernel, decision from the real engine on
// a real policy, kernel blocks through a recording Enforcer, answers as HookVerdicts.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <vector>

#include <riskgate/risk/engine.h>

#include "agent/gate.h"
#include <riskgate/identity/destinations.h>
#include <riskgate/identity/registry.h>
#include <riskgate/identity/resolver.h>
#include <riskgate/kernel/mounts.h>

using namespace riskgate;

namespace {

class FixedPeers final : public PeerIdentitySource {
 public:
  IdentityId id = 0;
  IdentityId peer_identity(const sockaddr_storage &, const sockaddr_storage &, std::uint64_t) const override
  {
    return id;
  }
};

class RecordingEnforcer final : public Enforcer {
 public:
  std::vector<BlockRequest> blocks;
  Result<void> block(const BlockRequest &request) override
  {
    blocks.push_back(request);
    return {};
  }
  Result<void> unblock(const BlockTarget &, bool) override { return {}; }
};

sockaddr_storage ipv4(const char *address, std::uint16_t port)
{
  sockaddr_storage out{};
  auto &a = reinterpret_cast<sockaddr_in &>(out);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &a.sin_addr);
  return out;
}

constexpr const char *kPolicy = R"(apiVersion: riskgate.dev/v1
kind: Identity
metadata: {name: batch}
spec: {}
---
apiVersion: riskgate.dev/v1
kind: Identity
metadata: {name: frontend}
spec: {}
---
apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: orders}
spec: {listen: "127.0.0.1:18080", upstream: "127.0.0.1:19000"}
---
apiVersion: riskgate.dev/v1
kind: RiskPolicy
metadata: {name: default}
spec:
  block: {scope: identity, ttl: 5m}
  signals: {failures: {weight: 100, window: 1m, ratio: 0.5, minRequests: 10}}
  rules:
    - {name: no-admin, deny: {from: [frontend], routes: ["/admin/*"]}}
    - {name: batch-never-orders, deny: {from: [batch], to: [orders]}}
)";

struct GateLab {
  FixedPeers peers;
  std::shared_ptr<identity::WorkloadRegistry> registry;
  std::unique_ptr<identity::IdentityResolver> resolver;
  std::unique_ptr<risk::Engine> engine;
  RecordingEnforcer enforcer;
  identity::DestinationIdentities destinations{
      [] { return Result<identity::LocalSockets>(identity::LocalSockets{}); }};
  std::unique_ptr<agent::Gate> gate;

  explicit GateLab(const char *policy_text = kPolicy)
  {
    auto loaded = policy::load_text(policy_text, "gate.yaml");
    REQUIRE_MESSAGE(loaded.ok(),
                    (loaded.diagnostics.empty() ? "" : policy::to_string(loaded.diagnostics[0])));
    registry = std::make_shared<identity::WorkloadRegistry>(kernel::cgroup2_root().value());
    REQUIRE(registry->set_policy_identities(loaded.set->identities).ok());
    REQUIRE(registry->rescan().ok());
    resolver = std::make_unique<identity::IdentityResolver>(peers, registry);
    REQUIRE(resolver->configure(loaded.set->services).ok());
    engine = std::make_unique<risk::Engine>(*loaded.set);
    std::vector<identity::DestinationService> services;
    for (const auto &service : loaded.set->services)
      services.push_back({service.name, service.identity, net::parse_endpoint(service.upstream).value()});
    destinations.configure(std::move(services));
    REQUIRE(destinations.refresh(*registry->snapshot()).ok());
    gate = std::make_unique<agent::Gate>(
        agent::GateParts{*resolver, *engine, &enforcer, nullptr, nullptr, &destinations});
  }
  IdentityId id_of(const char *name) const { return registry->snapshot()->find(name)->id; }

  HookVerdict call(IdentityId who, std::string_view path, const char *address = "10.9.0.7",
                   std::string_view service = "orders")
  {
    peers.id = who;
    RequestView request;
    request.method = "GET";
    request.target = path;
    request.path = path;
    request.service = service;
    request.peer = ipv4(address, 40001);
    request.socket_cookie = 77;
    HookVerdict verdict;
    gate->on_request(request, verdict);
    return verdict;
  }
};

}  // namespace

TEST_CASE("gate: a pair deny blocks in the kernel, a route-scoped deny answers 403 only")
{
  GateLab lab;
  const auto route_denied = lab.call(lab.id_of("frontend"), "/admin/users");
  CHECK(route_denied.kind == HookVerdict::Kind::respond);
  CHECK(route_denied.status == 403);
  CHECK(lab.enforcer.blocks.empty());

  const auto allowed = lab.call(lab.id_of("frontend"), "/orders/1");
  CHECK(allowed.kind == HookVerdict::Kind::forward);

  const auto pair_denied = lab.call(lab.id_of("batch"), "/orders/1");
  CHECK(pair_denied.status == 403);
  REQUIRE(lab.enforcer.blocks.size() == 1);
  CHECK(lab.enforcer.blocks[0].decision_id == pair_denied.decision_id);
  CHECK(lab.enforcer.blocks[0].target.identity == lab.id_of("batch"));
  CHECK(lab.enforcer.blocks[0].ttl_ms > 0);
}

// Two Services in front of two workloads: one declares its identity, the other's upstream address is
// in its identity's CIDR.
constexpr const char *kTwoServices =
    R"({apiVersion: riskgate.dev/v1, kind: Identity, metadata: {name: batch}, spec: {}}
---
{apiVersion: riskgate.dev/v1, kind: Identity, metadata: {name: payments}, spec: {}}
---
{apiVersion: riskgate.dev/v1, kind: Identity, metadata: {name: catalog}, spec: {selectors: [{cidr: 10.7.0.0/16}]}}
---
apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: pay}
spec: {listen: "127.0.0.1:18081", upstream: "127.0.0.1:19001", identity: payments}
---
apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: shop}
spec: {listen: "127.0.0.1:18082", upstream: "10.7.0.9:80"}
---
apiVersion: riskgate.dev/v1
kind: RiskPolicy
metadata: {name: default}
spec:
  rules:
    - {name: batch-never-pays, deny: {from: [batch], to: [payments]}}
)";

TEST_CASE("gate: a to: rule on an identity matches the Service's destination and blocks the pair")
{
  GateLab lab(kTwoServices);
  const auto shop = lab.call(lab.id_of("batch"), "/items", "10.9.0.7", "shop");
  CHECK(shop.kind == HookVerdict::Kind::forward);
  const auto pay = lab.call(lab.id_of("batch"), "/charge", "10.9.0.7", "pay");
  CHECK(pay.status == 403);
  REQUIRE(lab.enforcer.blocks.size() == 1);
  CHECK(lab.enforcer.blocks[0].target.scope == BlockScope::pair);
  CHECK(lab.enforcer.blocks[0].target.identity == lab.id_of("batch"));
  CHECK(lab.enforcer.blocks[0].target.peer_identity == lab.id_of("payments"));
  CHECK(lab.call(lab.id_of("batch"), "/items", "10.9.0.7", "shop").kind == HookVerdict::Kind::forward);
}

TEST_CASE("gate: how its exchanges end is learned for the caller, by address when it has no identity")
{
  GateLab lab;
  // An unknown caller (identity 0) at 10.9.0.7 whose every forwarded request ends 404 upstream.
  for (int i = 0; i < 10; ++i) {
    const auto verdict = lab.call(0, "/orders/1");
    REQUIRE_MESSAGE(verdict.kind == HookVerdict::Kind::forward, verdict.status, " ", verdict.reason);
    ExchangeResult result;
    result.decision_id = verdict.decision_id;
    result.status = 404;
    lab.gate->on_complete(RequestView{}, result);
  }
  CHECK(lab.call(0, "/orders/1").kind == HookVerdict::Kind::respond);  // failures: 10 of 10 (minRequests)
  CHECK(lab.call(0, "/orders/1", "10.9.0.8").kind == HookVerdict::Kind::forward);  // another caller
  CHECK(lab.call(lab.id_of("frontend"), "/orders/1").kind == HookVerdict::Kind::forward);
}

TEST_CASE("block requests: a scope the request cannot fill narrows, never to identity 0")
{
  Decision d;
  d.id = 5;
  d.action = Action::block;
  d.block_scope = BlockScope::identity;
  d.source_identity = 0;
  d.block_ttl_ms = 1000;
  RequestView request;
  request.peer = ipv4("10.9.0.8", 40002);
  const auto block = block_request(d, request.peer, request.socket_cookie).value();
  CHECK(block.target.scope == BlockScope::ip);
  CHECK(std::memcmp(&block.target.address, &request.peer, sizeof request.peer) == 0);

  d.source_identity = 9;
  d.block_scope = BlockScope::pair;  // the destination is world -> the caller's identity
  CHECK(block_request(d, request.peer, 0).value().target.scope == BlockScope::identity);
  d.block_scope = BlockScope::connection;
  CHECK(block_request(d, request.peer, 0).value().target.scope == BlockScope::ip);
  const auto conn = block_request(d, request.peer, 1234).value();
  CHECK(conn.target.scope == BlockScope::connection);
  CHECK(conn.target.socket_cookie == 1234);
  d.action = Action::limit;
  CHECK_FALSE(block_request(d, request.peer, 1234).ok());
}
