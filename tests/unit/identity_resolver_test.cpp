// IdentityResolver: the kernel says who calls (a fake PeerIdentitySource here), the token says
// what credential; a token presented by the wrong workload is a binding violation on first sight.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include <riskgate/identity/jwt_sign.h>
#include <riskgate/identity/resolver.h>

#include "agent/answer.h"

using namespace riskgate;
using namespace riskgate::identity;
namespace fs = std::filesystem;

namespace {

class FakePeers : public PeerIdentitySource {
 public:
  std::map<std::uint64_t, IdentityId> by_cookie;
  IdentityId peer_identity(const sockaddr_storage &, const sockaddr_storage &,
                           std::uint64_t cookie) const override
  {
    auto it = by_cookie.find(cookie);
    return it == by_cookie.end() ? 0 : it->second;
  }
};

struct Lab {
  fs::path dir;
  FakePeers peers;
  std::shared_ptr<WorkloadRegistry> registry = std::make_shared<WorkloadRegistry>("");
  SigningKey key;
  std::unique_ptr<IdentityResolver> resolver;
  IdentityId frontend = 0, batch = 0;

  Lab()
  {
    char tmpl[] = "/tmp/rgt-resolver-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    key = generate_signing_key(Alg::ES256, "k1").value();
    write("jwks.json", *jwks_document({&key}));
    policy::Identity fe, ba;
    fe.name = "frontend";
    ba.name = "batch";
    REQUIRE(registry->set_policy_identities({fe, ba}).ok());
    auto snap = registry->rescan();
    REQUIRE(snap.ok());
    frontend = (*snap)->find("frontend")->id;
    batch = (*snap)->find("batch")->id;
    peers.by_cookie = {{1, frontend}, {2, batch}};
    resolver = std::make_unique<IdentityResolver>(peers, registry);
    REQUIRE_MESSAGE(resolver->configure({service()}).ok(), resolver->configure({service()}).error());
  }
  ~Lab() { fs::remove_all(dir); }

  std::string write(const std::string &name, const std::string &text) const
  {
    std::ofstream(dir / (name + ".tmp")) << text;
    fs::rename(dir / (name + ".tmp"), dir / name);
    return (dir / name).string();
  }

  policy::Service service() const
  {
    policy::Service s;
    s.name = "orders";
    policy::JwtAuth jwt;
    jwt.required = true;
    jwt.issuers = {"https://issuer.example"};
    jwt.audiences = {"orders"};
    jwt.jwks_file = (dir / "jwks.json").string();
    s.jwt = jwt;
    s.bindings = {{"svc:frontend", {"frontend"}}, {"svc:shared-*", {"*"}}};
    return s;
  }

  std::string token(const std::string &sub = "svc:frontend", std::int64_t exp_in = 600,
                    const std::string &cnf = "") const
  {
    nlohmann::json claims = {{"iss", "https://issuer.example"},
                             {"sub", sub},
                             {"aud", "orders"},
                             {"jti", "j-" + sub},
                             {"exp", std::time(nullptr) + exp_in}};
    if (!cnf.empty())
      claims["cnf"] = {{"x5t#S256", cnf}};
    return *sign_jwt(key, claims.dump());
  }
};

RequestIdentity call(const Lab &lab, std::uint64_t cookie, std::vector<HeaderView> headers,
                     const ClientCertificate *cert = nullptr, std::string_view service = "orders")
{
  RequestView request;
  request.method = "GET";
  request.path = "/orders/1";
  request.headers = headers;
  request.socket_cookie = cookie;
  request.service = service;
  auto *sin = reinterpret_cast<sockaddr_in *>(&request.peer);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(40000);
  return lab.resolver->resolve(request, cert);
}

std::string bearer(const std::string &token)
{
  return "Bearer " + token;
}

}  // namespace

TEST_CASE("a valid token presented by the workload it is bound to")
{
  Lab lab;
  const std::string token = lab.token();
  const std::string auth = bearer(token);
  const auto id = call(lab, 1, {{"Authorization", auth}});
  CHECK(id.workload == lab.frontend);
  CHECK(id.workload_name == "frontend");
  CHECK(id.credential == CredentialStatus::valid);
  CHECK(id.credential_required);
  CHECK(id.subject == "svc:frontend");
  CHECK(id.issuer == "https://issuer.example");
  CHECK(id.binding == BindingVerdict::bound);
  CHECK(id.token_fingerprint == to_hex(fingerprint(token)));
  CHECK(id.token_fingerprint.size() == 32);
  CHECK(reinterpret_cast<const sockaddr_in &>(id.source).sin_port == htons(40000));
  // The token itself appears nowhere in what leaves the module.
  for (const auto &field : {id.workload_name, id.token_fingerprint, id.subject, id.client_id, id.issuer,
                            id.jti, id.failure_reason, id.binding_reason})
    CHECK(field.find(token.substr(token.rfind('.') + 1)) == std::string::npos);
}

TEST_CASE(
    "stolen token: the frontend's token replayed from the batch workload is a violation on the first request")
{
  Lab lab;
  const std::string auth = bearer(lab.token());
  const auto stolen = call(lab, 2, {{"authorization", auth}});
  CHECK(stolen.credential == CredentialStatus::valid);  // static checks pass it
  CHECK(stolen.workload_name == "batch");
  CHECK(stolen.binding == BindingVerdict::violation);
  CHECK(stolen.binding_reason == "token of svc:frontend presented by workload batch; bound to frontend");
  // An unknown peer (world) is not the frontend either.
  CHECK(call(lab, 99, {{"authorization", auth}}).binding == BindingVerdict::violation);
  // A subject no binding mentions is not judged; a wildcard binding admits anyone.
  CHECK(call(lab, 2, {{"authorization", bearer(lab.token("svc:other"))}}).binding ==
        BindingVerdict::not_applicable);
  CHECK(call(lab, 2, {{"authorization", bearer(lab.token("svc:shared-cache"))}}).binding ==
        BindingVerdict::bound);
}

TEST_CASE("headers claiming another identity change nothing: the workload comes from the kernel only")
{
  Lab lab;
  const std::string auth = bearer(lab.token());
  const auto id = call(lab, 2,
                       {{"Authorization", auth},
                        {"x-riskgate-identity", "frontend"},
                        {"X-Forwarded-For", "10.0.1.5"},
                        {"x-spiffe-id", "spiffe://cluster.local/ns/shop/sa/frontend"}});
  CHECK(id.workload == lab.batch);
  CHECK(id.workload_name == "batch");
  CHECK(id.binding == BindingVerdict::violation);
}

TEST_CASE("missing, malformed and expired credentials map to 401 answers")
{
  Lab lab;
  auto id = call(lab, 1, {});
  CHECK(id.credential == CredentialStatus::none);
  CHECK(id.failure_reason == "no bearer token");
  auto answer = agent::unauthorized(id);
  CHECK(answer.kind == HookVerdict::Kind::respond);
  CHECK(answer.status == 401);
  CHECK(answer.reason == "missing_token");
  CHECK(answer.headers == "WWW-Authenticate: Bearer realm=\"riskgate\"\r\n");

  const std::string expired = bearer(lab.token("svc:frontend", -3600));
  id = call(lab, 1, {{"Authorization", expired}});
  CHECK(id.credential == CredentialStatus::expired);
  CHECK(id.subject == "svc:frontend");
  answer = agent::unauthorized(id);
  CHECK(answer.reason == "invalid_token");
  CHECK(answer.header("www-authenticate") ==
        "Bearer realm=\"riskgate\", error=\"invalid_token\", error_description=\"token expired\"");

  id = call(lab, 1, {{"Authorization", "Bearer a.b"}});
  CHECK(id.credential == CredentialStatus::invalid);
  CHECK_FALSE(id.token_fingerprint.empty());
  id = call(lab, 1, {{"Authorization", "Basic dXNlcjpwYXNz"}});
  CHECK(id.credential == CredentialStatus::invalid);
  CHECK(id.failure_reason == "Authorization scheme is not Bearer");
  const std::string good = bearer(lab.token());
  id = call(lab, 1, {{"Authorization", good}, {"Authorization", good}});
  CHECK(id.failure_reason == "more than one Authorization header");
  CHECK(call(lab, 1, {{"Authorization", "Bearer   "}}).failure_reason == "empty bearer token");

  // error_description never carries quotes or backslashes (RFC 6750 section 3).
  RequestIdentity odd;
  odd.credential = CredentialStatus::invalid;
  odd.failure_reason = "unknown kid \"x\\y\"";
  CHECK(
      agent::unauthorized(odd).header("WWW-Authenticate")->find("error_description=\"unknown kid 'x'y'\"") !=
      std::string_view::npos);
}

TEST_CASE("RFC 8705: a certificate-bound token needs the matching client certificate")
{
  Lab lab;
  ClientCertificate cert;
  cert.sha256.fill(0x42);
  ClientCertificate other;
  other.sha256.fill(0x17);
  const std::string auth = bearer(lab.token("svc:frontend", 600, x5t_s256(cert)));
  CHECK(call(lab, 1, {{"Authorization", auth}}, &cert).binding == BindingVerdict::bound);
  auto id = call(lab, 1, {{"Authorization", auth}}, &other);
  CHECK(id.binding == BindingVerdict::violation);
  CHECK(id.binding_reason == "client certificate does not match the token's cnf.x5t#S256");
  id = call(lab, 1, {{"Authorization", auth}});
  CHECK(id.binding == BindingVerdict::violation);
  CHECK(id.binding_reason.find("presented none") != std::string::npos);
}

TEST_CASE("services without JWT settings keep only the fingerprint; unknown services too")
{
  Lab lab;
  policy::Service plain;
  plain.name = "static";
  REQUIRE(lab.resolver->configure({lab.service(), plain}).ok());
  const std::string token = lab.token();
  const std::string auth = bearer(token);
  for (std::string_view service : {"static", "nonexistent"}) {
    const auto id = call(lab, 1, {{"Authorization", auth}}, nullptr, service);
    CHECK(id.credential == CredentialStatus::none);
    CHECK_FALSE(id.credential_required);
    CHECK(id.token_fingerprint == to_hex(fingerprint(token)));
    CHECK(id.subject.empty());
  }
}

TEST_CASE("configuration errors name the service and leave the running configuration alone")
{
  Lab lab;
  auto broken = lab.service();
  broken.jwt->jwks_file = (lab.dir / "missing.json").string();
  broken.where = {"policies/orders.yaml", 4, 3};
  auto r = lab.resolver->configure({broken});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("policies/orders.yaml:4:3: service orders: JWKS") == 0);
  auto hs = lab.service();
  hs.jwt->algorithms = {"HS256"};
  CHECK(lab.resolver->configure({hs}).error().find("HS256 needs") != std::string::npos);
  const std::string auth = bearer(lab.token());
  CHECK(call(lab, 1, {{"Authorization", auth}}).credential == CredentialStatus::valid);
}

TEST_CASE("refresh() picks up a rotated JWKS file and a revocation list")
{
  Lab lab;
  auto service = lab.service();
  service.jwt->revocation_file = lab.write("revoked.txt", "");
  REQUIRE(lab.resolver->configure({service}).ok());
  const std::string old_auth = bearer(lab.token());
  CHECK(call(lab, 1, {{"Authorization", old_auth}}).credential == CredentialStatus::valid);

  lab.write("revoked.txt", "jti j-svc:frontend\n");
  REQUIRE(lab.resolver->refresh().ok());
  CHECK(call(lab, 1, {{"Authorization", old_auth}}).credential == CredentialStatus::revoked);

  lab.key = generate_signing_key(Alg::EdDSA, "k2").value();
  lab.write("jwks.json", *jwks_document({&lab.key}));
  lab.write("revoked.txt", "");
  REQUIRE(lab.resolver->refresh().ok());
  CHECK(call(lab, 1, {{"Authorization", old_auth}}).failure_reason == "unknown kid \"k1\"");
  CHECK(call(lab, 1, {{"Authorization", bearer(lab.token())}}).credential == CredentialStatus::valid);

  lab.write("jwks.json", "[]");
  auto r = lab.resolver->refresh();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("previous keys stay in force") != std::string::npos);
}
