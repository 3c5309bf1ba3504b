// Kernel-attested identity end to end: two workloads (curl processes) in two child cgroups mapped by
// the registry to two identities call the proxy; the hook resolves each request with the
// kernel-backed PeerIdentitySource. Each request gets its caller's identity, a header claiming
// another identity changes nothing, and the frontend's token replayed from the batch cgroup is a
// binding violation on the first request.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <riskgate/identity/jwt_sign.h>
#include <riskgate/identity/resolver.h>
#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/mounts.h>
#include <riskgate/kernel/pinned_maps.h>
#include <riskgate/proxy/proxy.h>
#include "agent/answer.h"
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;
using namespace riskgate::identity;
namespace fs = std::filesystem;

namespace {

// Resolves every request, remembers what it resolved, and answers like a minimal policy would:
// 401 for a missing/invalid credential, 403 for a binding violation, else forward.
class ResolvingHook final : public RequestHook {
 public:
  explicit ResolvingHook(const IdentityResolver &resolver) : resolver_(resolver) {}
  void on_request(const RequestView &request, HookVerdict &verdict) override
  {
    RequestIdentity id = resolver_.resolve(request);
    if (id.credential != CredentialStatus::valid) {
      verdict = agent::unauthorized(id);
    } else if (id.binding == BindingVerdict::violation) {
      verdict.kind = HookVerdict::Kind::respond;
      verdict.status = 403;
      verdict.reason = "binding_violation";
    } else {
      verdict.add_header("x-riskgate-identity", id.workload_name);
    }
    std::lock_guard lock(mu_);
    seen_.push_back(std::move(id));
  }
  void on_complete(const RequestView &, const ExchangeResult &) override {}
  std::vector<RequestIdentity> seen()
  {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  const IdentityResolver &resolver_;
  std::mutex mu_;
  std::vector<RequestIdentity> seen_;
};

struct Lab {
  test::TempPinDir pins;
  test::ScopedCgroup parent{"rgt-cg"};
  test::ScopedCgroup frontend_cg{parent, "frontend"};
  test::ScopedCgroup batch_cg{parent, "batch"};
  std::string dir;
  std::unique_ptr<kernel::Datapath> datapath;
  std::shared_ptr<WorkloadRegistry> registry;
  std::unique_ptr<kernel::MapPeerIdentity> peers;
  std::unique_ptr<IdentityResolver> resolver;
  std::unique_ptr<ResolvingHook> hook;
  test::NginxUpstream nginx;
  std::unique_ptr<proxy::Proxy> proxy;
  SigningKey key = generate_signing_key(Alg::ES256, "issuer-1").value();

  Lab()
  {
    dir = fs::temp_directory_path() / test::unique_name("rgt-idlab");
    fs::create_directories(dir);
    std::ofstream(dir + "/jwks.json") << *jwks_document({&key});

    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    config.cgroup = parent.path();
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    datapath = std::move(*dp);

    // The registry finds the two cgroups by glob on their path under the cgroup v2 root.
    const std::string root = kernel::cgroup2_root().value();
    registry = std::make_shared<WorkloadRegistry>(root);
    policy::Identity frontend, batch;
    frontend.name = "frontend";
    frontend.selectors = {{frontend_cg.path().substr(root.size()), "", "", ""}};
    batch.name = "batch";
    batch.selectors = {{batch_cg.path().substr(root.size()), "", "", ""}};
    registry->adopt_ids(datapath->maps().identity_names().value());
    REQUIRE(registry->set_policy_identities({frontend, batch}).ok());
    auto snapshot = registry->rescan();
    REQUIRE_MESSAGE(snapshot.ok(), snapshot.error());
    auto synced = datapath->maps().sync_identities((*snapshot)->records());
    REQUIRE_MESSAGE(synced.ok(), synced.error());

    peers = std::make_unique<kernel::MapPeerIdentity>(datapath->maps());
    resolver = std::make_unique<IdentityResolver>(*peers, registry);
    policy::Service orders;
    orders.name = "orders";
    policy::JwtAuth jwt;
    jwt.required = true;
    jwt.issuers = {"https://issuer.example"};
    jwt.audiences = {"orders"};
    jwt.jwks_file = dir + "/jwks.json";
    orders.jwt = jwt;
    orders.bindings = {{"svc:frontend", {"frontend"}}, {"svc:batch", {"batch"}}};
    REQUIRE(resolver->configure({orders}).ok());
    hook = std::make_unique<ResolvingHook>(*resolver);

    proxy::ProxyConfig pc;
    pc.workers = 1;
    pc.listeners.push_back({"orders", "127.0.0.1:0", "orders-up", false});
    pc.upstreams.push_back({"orders-up", nginx.address()});
    auto created = proxy::Proxy::create(pc, *hook);
    REQUIRE_MESSAGE(created.ok(), created.error());
    proxy = std::move(*created);
    REQUIRE(proxy->start().ok());
  }
  ~Lab()
  {
    if (proxy)
      proxy->stop();
    fs::remove_all(dir);
  }

  IdentityId id_of(const std::string &name) const { return registry->snapshot()->find(name)->id; }

  std::string token(const std::string &subject) const
  {
    const nlohmann::json claims = {{"iss", "https://issuer.example"},
                                   {"sub", subject},
                                   {"aud", "orders"},
                                   {"exp", std::time(nullptr) + 600}};
    return sign_jwt(key, claims.dump()).value();
  }

  // curl from inside `cgroup`; returns the status code and the response headers.
  std::pair<int, std::string> curl(const test::ScopedCgroup &cgroup, const std::vector<std::string> &headers)
  {
    const std::string out = dir + "/" + test::unique_name("curl");
    std::vector<std::string> argv = {"/usr/bin/curl",  "-s", "-o",           "/dev/null",  "-D",
                                     out + ".headers", "-w", "%{http_code}", "--max-time", "5"};
    for (const auto &h : headers) {
      argv.push_back("-H");
      argv.push_back(h);
    }
    argv.push_back(fmt::format("http://127.0.0.1:{}/", proxy->listen_port(0)));
    test::Process process(argv, cgroup.path(), out);
    const auto status = process.wait(10000);
    REQUIRE(status.has_value());
    return {std::atoi(test::read_text(out).c_str()), test::read_text(out + ".headers")};
  }
};

}  // namespace

TEST_CASE("the registry's cgroup ids are the kernel's and each request carries its caller's kernel identity")
{
  Lab lab;
  const auto snapshot = lab.registry->snapshot();
  CHECK(snapshot->find("frontend")->cgroup_ids == std::vector<std::uint64_t>{lab.frontend_cg.id()});
  CHECK(snapshot->find("batch")->cgroup_ids == std::vector<std::uint64_t>{lab.batch_cg.id()});
  // The names are in the kernel's pinned map too, for riskgatectl and a restarted agent.
  const auto names = lab.datapath->maps().identity_names().value();
  CHECK(names.at(lab.id_of("frontend")) == "frontend");

  const std::string frontend_token = "Authorization: Bearer " + lab.token("svc:frontend");
  const std::string batch_token = "Authorization: Bearer " + lab.token("svc:batch");

  CHECK(lab.curl(lab.frontend_cg, {frontend_token}).first == 200);
  CHECK(lab.curl(lab.batch_cg, {batch_token}).first == 200);
  // A header claiming the other identity changes nothing (the proxy also strips x-riskgate-*).
  CHECK(lab.curl(lab.batch_cg, {batch_token, "X-Riskgate-Identity: frontend", "X-Forwarded-For: 10.0.1.5",
                                "X-Spiffe-Id: spiffe://cluster.local/ns/shop/sa/frontend"})
            .first == 200);

  const auto seen = lab.hook->seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].workload == lab.id_of("frontend"));
  CHECK(seen[0].workload_name == "frontend");
  CHECK(seen[0].binding == BindingVerdict::bound);
  CHECK(seen[1].workload_name == "batch");
  CHECK(seen[1].binding == BindingVerdict::bound);
  CHECK(seen[2].workload == lab.id_of("batch"));
  CHECK(seen[2].workload_name == "batch");
}

TEST_CASE(
    "stolen token: the frontend's token replayed from the batch cgroup is a violation on the first request")
{
  Lab lab;
  const std::string stolen = "Authorization: Bearer " + lab.token("svc:frontend");
  CHECK(lab.curl(lab.batch_cg, {stolen, "X-Riskgate-Identity: frontend"}).first == 403);
  auto seen = lab.hook->seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].credential == CredentialStatus::valid);
  CHECK(seen[0].workload_name == "batch");
  CHECK(seen[0].binding == BindingVerdict::violation);
  CHECK(seen[0].binding_reason == "token of svc:frontend presented by workload batch; bound to frontend");

  // And without a token: 401 with the RFC 6750 challenge.
  const auto [status, head] = lab.curl(lab.batch_cg, {});
  CHECK(status == 401);
  CHECK(head.find("WWW-Authenticate: Bearer realm=\"riskgate\"") != std::string::npos);
}
