// Cost of verifying a bearer token per request: cold (parse + signature) for RS256, ES256 and
// EdDSA, and cached (a repeated token: seeded hash, shard lookup, full compare). Peers measured in
// the same run: the bare OpenSSL signature check under each cold figure, and under the cached one
// what a cache keyed by SHA-256 of the token or by std::string would pay just to find the entry.
// Last, the whole IdentityResolver::resolve step around a cached token.
// Results: docs/BENCHMARKS.md.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <riskgate/identity/encoding.h>
#include <riskgate/identity/jwt.h>
#include <riskgate/identity/jwt_sign.h>
#include <riskgate/identity/resolver.h>

using namespace riskgate;
using namespace riskgate::identity;

namespace {

struct Fixture {
  SigningKey key;
  std::shared_ptr<KeyStore> store = std::make_shared<KeyStore>();
  std::unique_ptr<JwtVerifier> verifier;
  std::string token;
  std::int64_t now = std::time(nullptr);

  explicit Fixture(Alg alg)
  {
    key = generate_signing_key(alg, "bench").value();
    store->replace(KeyStore::Slot::file, KeySet::parse(*jwks_document({&key}), "bench").value());
    JwtConfig config;
    config.issuers = {"https://issuer.example"};
    config.audiences = {"orders"};
    verifier = std::make_unique<JwtVerifier>(config, store);
    // A typical workload token: ~700 bytes with RS256.
    const nlohmann::json claims = {{"iss", "https://issuer.example"},
                                   {"sub", "svc:frontend"},
                                   {"aud", {"orders", "payments"}},
                                   {"azp", "frontend-client"},
                                   {"jti", "6f1c2b9e-1d7e-4a8e-9b1f-3f2d7c1a0e55"},
                                   {"iat", now},
                                   {"exp", now + 3600},
                                   {"scope", "orders:read orders:write"},
                                   {"tenant", "shop"}};
    token = sign_jwt(key, claims.dump()).value();
  }
};

Fixture &fixture(Alg alg)
{
  static std::unordered_map<int, std::unique_ptr<Fixture>> all;
  auto &f = all[static_cast<int>(alg)];
  if (!f)
    f = std::make_unique<Fixture>(alg);
  return *f;
}

void cold(benchmark::State &state, Alg alg)
{
  auto &f = fixture(alg);
  for (auto _ : state) {
    auto v = f.verifier->verify_uncached(f.token, f.now);
    if (v.status != CredentialStatus::valid)
      state.SkipWithError(v.reason.c_str());
    benchmark::DoNotOptimize(v);
  }
  state.counters["token_bytes"] = static_cast<double>(f.token.size());
}

// The signature check alone, as the floor under the cold figure.
void peer_signature_only(benchmark::State &state, Alg alg)
{
  auto &f = fixture(alg);
  const auto dot = f.token.rfind('.');
  const std::string input = f.token.substr(0, dot);
  const std::string sig = base64url_decode(std::string_view(f.token).substr(dot + 1)).value();
  const Jwk &jwk = f.store->current()->keys().front();
  std::string der = sig;
  if (alg == Alg::ES256) {  // OpenSSL verifies DER: convert once, outside the loop
    ECDSA_SIG *s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(reinterpret_cast<const unsigned char *>(sig.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char *>(sig.data()) + 32, 32, nullptr));
    unsigned char *out = nullptr;
    const int len = i2d_ECDSA_SIG(s, &out);
    der.assign(reinterpret_cast<char *>(out), static_cast<std::size_t>(len));
    OPENSSL_free(out);
    ECDSA_SIG_free(s);
  }
  for (auto _ : state) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(ctx, nullptr, alg_digest(alg), nullptr, jwk.key.get());
    const int ok = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(der.data()), der.size(),
                                    reinterpret_cast<const unsigned char *>(input.data()), input.size());
    EVP_MD_CTX_free(ctx);
    if (ok != 1)
      state.SkipWithError("signature check failed");
  }
}

void BM_cached(benchmark::State &state)
{
  auto &f = fixture(Alg::RS256);
  (void)f.verifier->verify(f.token, f.now);
  for (auto _ : state) {
    auto v = f.verifier->verify(f.token, f.now);
    benchmark::DoNotOptimize(v);
  }
  if (!f.verifier->verify(f.token, f.now).cached)
    state.SkipWithError("not served from the cache");
  state.counters["token_bytes"] = static_cast<double>(f.token.size());
}

void BM_peer_sha256_of_token(benchmark::State &state)
{
  auto &f = fixture(Alg::RS256);
  for (auto _ : state) benchmark::DoNotOptimize(sha256(f.token));
}

void BM_peer_string_map_lookup(benchmark::State &state)
{
  auto &f = fixture(Alg::RS256);
  std::unordered_map<std::string, int> map;
  for (int i = 0; i < 1000; ++i) map.emplace(f.token + std::to_string(i), i);
  map.emplace(f.token, 1);
  for (auto _ : state) benchmark::DoNotOptimize(map.find(f.token));
}

class OnePeer final : public PeerIdentitySource {
 public:
  IdentityId id = 0;
  IdentityId peer_identity(const sockaddr_storage &, const sockaddr_storage &, std::uint64_t) const override
  {
    return id;
  }
};

// The whole per-request identity step with a repeated token: header scan, kernel identity (a fake
// returning a constant here), cached verification, binding, RequestIdentity with its strings.
void BM_resolve_cached(benchmark::State &state)
{
  auto &f = fixture(Alg::RS256);
  char dir[] = "/tmp/rgt-jwtbench-XXXXXX";
  if (!::mkdtemp(dir)) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const std::string jwks = std::string(dir) + "/jwks.json";
  std::ofstream(jwks) << *jwks_document({&f.key});
  auto registry = std::make_shared<WorkloadRegistry>("");
  policy::Identity frontend;
  frontend.name = "frontend";
  (void)registry->set_policy_identities({frontend});
  OnePeer peers;
  peers.id = registry->rescan().value()->find("frontend")->id;
  IdentityResolver resolver(peers, registry);
  policy::Service orders;
  orders.name = "orders";
  orders.jwt = policy::JwtAuth{};
  orders.jwt->required = true;
  orders.jwt->issuers = {"https://issuer.example"};
  orders.jwt->audiences = {"orders"};
  orders.jwt->jwks_file = jwks;
  orders.bindings = {{"svc:frontend", {"frontend"}}};
  if (auto r = resolver.configure({orders}); !r) {
    state.SkipWithError(r.error().c_str());
    return;
  }
  const std::string auth = "Bearer " + f.token;
  const HeaderView headers[] = {
      {"Host", "orders"}, {"User-Agent", "curl/7.88"}, {"Accept", "*/*"}, {"Authorization", auth}};
  RequestView request;
  request.method = "GET";
  request.path = "/orders/7";
  request.headers = headers;
  request.service = "orders";
  for (auto _ : state) {
    auto id = resolver.resolve(request);
    benchmark::DoNotOptimize(id);
  }
  if (resolver.resolve(request).binding != BindingVerdict::bound)
    state.SkipWithError("not bound");
  std::filesystem::remove_all(dir);
}

}  // namespace

BENCHMARK_CAPTURE(cold, RS256, Alg::RS256);
BENCHMARK_CAPTURE(peer_signature_only, RS256, Alg::RS256);
BENCHMARK_CAPTURE(cold, ES256, Alg::ES256);
BENCHMARK_CAPTURE(peer_signature_only, ES256, Alg::ES256);
BENCHMARK_CAPTURE(cold, EdDSA, Alg::EdDSA);
BENCHMARK_CAPTURE(peer_signature_only, EdDSA, Alg::EdDSA);
BENCHMARK(BM_cached);
BENCHMARK(BM_cached)->Threads(2);
BENCHMARK(BM_peer_sha256_of_token);
BENCHMARK(BM_peer_string_map_lookup);
BENCHMARK(BM_resolve_cached);

BENCHMARK_MAIN();
