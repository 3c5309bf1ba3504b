// JWT verification against tokens minted here with keys generated at test time.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <riskgate/identity/encoding.h>
#include <riskgate/identity/jwt.h>
#include <riskgate/identity/jwt_sign.h>

using namespace riskgate;
using namespace riskgate::identity;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

SigningKey make_key_copy(const SigningKey &key)
{
  SigningKey copy;
  copy.alg = key.alg;
  copy.kid = key.kid;
  EVP_PKEY_up_ref(key.key.get());
  copy.key.reset(key.key.get());
  return copy;
}

// RSA key generation takes up to a second on a loaded machine: one RSA key per kid per process.
SigningKey make_key(Alg alg, const std::string &kid)
{
  static std::map<std::string, SigningKey> rsa_by_kid;
  const bool rsa = is_rsa(alg);
  if (rsa && rsa_by_kid.count(kid)) {
    SigningKey copy = make_key_copy(rsa_by_kid[kid]);
    copy.alg = alg;
    return copy;
  }
  auto key = generate_signing_key(alg, kid);
  REQUIRE_MESSAGE(key.ok(), key.error());
  if (rsa)
    rsa_by_kid[kid] = make_key_copy(*key);
  return std::move(*key);
}

std::string claims(std::int64_t exp = kNow + 600, const std::string &aud = "orders",
                   const std::string &iss = "https://issuer.example")
{
  return nlohmann::json{{"iss", iss},    {"sub", "svc:frontend"}, {"aud", aud}, {"azp", "frontend-client"},
                        {"jti", "id-1"}, {"iat", kNow - 10},      {"exp", exp}}
      .dump();
}

std::string sign(const SigningKey &key, const std::string &body)
{
  auto token = sign_jwt(key, body);
  REQUIRE_MESSAGE(token.ok(), token.error());
  return *token;
}

std::shared_ptr<KeyStore> store_of(const std::vector<const SigningKey *> &keys)
{
  auto doc = jwks_document(keys);
  REQUIRE_MESSAGE(doc.ok(), doc.error());
  auto set = KeySet::parse(*doc, "test");
  REQUIRE_MESSAGE(set.ok(), set.error());
  auto store = std::make_shared<KeyStore>();
  store->replace(KeyStore::Slot::file, std::move(*set));
  return store;
}

JwtConfig config()
{
  JwtConfig c;
  c.issuers = {"https://issuer.example"};
  c.audiences = {"orders"};
  c.leeway_s = 30;
  return c;
}

struct TempDir {
  std::filesystem::path path;
  TempDir()
  {
    char tmpl[] = "/tmp/rgt-jwt-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string &name, const std::string &text) const
  {
    const auto file = path / name;
    const auto tmp = path / (name + ".tmp");
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, file);  // atomic replace, as an operator's tooling would do
    return file.string();
  }
};

// Replaces one segment of a compact token.
std::string with_segment(const std::string &token, int index, const std::string &segment)
{
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = token.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(token.substr(start, dot - start));
  parts.push_back(token.substr(start));
  parts.at(static_cast<std::size_t>(index)) = segment;
  return parts[0] + "." + parts[1] + "." + parts[2];
}

}  // namespace

TEST_CASE("base64url rejects padding, foreign characters and non-canonical trailing bits")
{
  CHECK(base64url_decode("aGVsbG8") == std::optional<std::string>("hello"));
  CHECK(base64url_encode("hello") == "aGVsbG8");
  CHECK_FALSE(base64url_decode("aGVsbG8=").has_value());
  CHECK_FALSE(base64url_decode("aGVs+G8").has_value());
  CHECK_FALSE(base64url_decode("aGVsbG9").has_value());  // same bytes as aGVsbG8 with a stray bit
  CHECK_FALSE(base64url_decode("a").has_value());
}

TEST_CASE("every supported algorithm verifies a token made with its key")
{
  for (Alg alg : {Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256,
                  Alg::ES384, Alg::ES512, Alg::EdDSA, Alg::HS256}) {
    CAPTURE(alg_name(alg));
    const auto key = make_key(alg, is_rsa(alg) ? "k1" : "k-" + std::string(alg_name(alg)));
    auto c = config();
    c.allow_hs256 = alg == Alg::HS256;
    JwtVerifier verifier(c, store_of({&key}));
    const auto v = verifier.verify(sign(key, claims()), kNow);
    CHECK_MESSAGE(v.status == CredentialStatus::valid, v.reason);
    REQUIRE(v.token);
    CHECK(v.token->subject == "svc:frontend");
    CHECK(v.token->client_id == "frontend-client");
    CHECK(v.token->issuer == "https://issuer.example");
    CHECK(v.token->audience == "orders");
    CHECK(v.token->jti == "id-1");
    CHECK(v.token->expires_at == kNow + 600);
    CHECK(v.token->alg == alg);
  }
}

TEST_CASE("a signature from another key, or over other bytes, is rejected")
{
  const auto key = make_key(Alg::ES256, "k1");
  const auto impostor = make_key(Alg::ES256, "k1");
  JwtVerifier verifier(config(), store_of({&key}));
  auto v = verifier.verify(sign(impostor, claims()), kNow);
  CHECK(v.status == CredentialStatus::invalid);
  CHECK(v.reason == "signature does not verify");
  CHECK_FALSE(v.token);

  const auto good = sign(key, claims());
  const auto other_payload = base64url_encode(claims(kNow + 99999));
  v = verifier.verify(with_segment(good, 1, other_payload), kNow);
  CHECK(v.status == CredentialStatus::invalid);
  CHECK(v.reason == "signature does not verify");
}

TEST_CASE("algorithm confusion: an RS256 key never verifies an HS256 token made with its public bytes")
{
  const auto rsa = make_key(Alg::RS256, "rsa");
  auto doc = nlohmann::json::parse(*public_jwk(rsa));
  SigningKey forged;
  forged.alg = Alg::HS256;
  forged.kid = "rsa";
  auto c = config();
  c.allow_hs256 = true;  // even where HS256 is enabled, the RSA key does not allow it
  JwtVerifier verifier(c, store_of({&rsa}));
  for (const std::string &secret :
       {*base64url_decode(doc["n"].get<std::string>()), doc.dump(), std::string(*public_jwk(rsa))}) {
    forged.secret = secret;
    const auto v = verifier.verify(sign(forged, claims()), kNow);
    CHECK(v.status == CredentialStatus::invalid);
    CHECK(v.reason == "key \"rsa\" does not allow alg HS256");
  }
  // A key that declares "alg": "RS256" does not verify PS256 either.
  auto ps = make_key_copy(rsa);
  ps.alg = Alg::PS256;
  CHECK(verifier.verify(sign(ps, claims()), kNow).status == CredentialStatus::invalid);
}

TEST_CASE("alg none and unknown algorithms are never accepted")
{
  const auto key = make_key(Alg::RS256, "k1");
  JwtVerifier verifier(config(), store_of({&key}));
  const std::string body = base64url_encode(claims());
  for (const std::string header : {R"({"alg":"none"})", R"({"alg":"none","kid":"k1"})"}) {
    const auto v = verifier.verify(base64url_encode(header) + "." + body + ".", kNow);
    CHECK(v.status == CredentialStatus::invalid);
    CHECK(v.reason == "alg \"none\" is never accepted");
  }
  auto v = verifier.verify(base64url_encode(R"({"alg":"HS512","kid":"k1"})") + "." + body + ".AAAA", kNow);
  CHECK(v.reason == "unsupported alg \"HS512\"");
  // HS256 without allow_hs256, even with an oct key in the set.
  const auto hs = make_key(Alg::HS256, "h");
  JwtVerifier strict(config(), store_of({&hs}));
  v = strict.verify(sign(hs, claims()), kNow);
  CHECK(v.status == CredentialStatus::invalid);
  CHECK(v.reason == "alg HS256 is not enabled");
  // A configured alg list narrows what the keys allow.
  auto c = config();
  c.algorithms = {Alg::PS256};
  JwtVerifier narrowed(c, store_of({&key}));
  CHECK(narrowed.verify(sign(key, claims()), kNow).reason == "alg RS256 is not allowed here");
}

TEST_CASE("time claims: expired, not yet valid, issued in the future, with leeway")
{
  const auto key = make_key(Alg::EdDSA, "ed");
  JwtVerifier verifier(config(), store_of({&key}));
  auto v = verifier.verify(sign(key, claims(kNow - 31)), kNow);
  CHECK(v.status == CredentialStatus::expired);
  REQUIRE(v.token);  // the signature held: the subject is still known for the decision log
  CHECK(v.token->subject == "svc:frontend");
  CHECK(verifier.verify(sign(key, claims(kNow - 29)), kNow).status == CredentialStatus::valid);

  auto body = nlohmann::json::parse(claims());
  body["nbf"] = kNow + 300;
  CHECK(verifier.verify(sign(key, body.dump()), kNow).status == CredentialStatus::not_yet_valid);
  body["nbf"] = kNow + 20;
  CHECK(verifier.verify(sign(key, body.dump()), kNow).status == CredentialStatus::valid);
  body.erase("nbf");
  body["iat"] = kNow + 3600;
  v = verifier.verify(sign(key, body.dump()), kNow);
  CHECK(v.status == CredentialStatus::not_yet_valid);
  CHECK(v.reason == "token issued in the future (iat)");
  body.erase("iat");
  body.erase("exp");
  CHECK(verifier.verify(sign(key, body.dump()), kNow).reason == "token has no exp");
  body["exp"] = "tomorrow";
  CHECK(verifier.verify(sign(key, body.dump()), kNow).status == CredentialStatus::invalid);
}

TEST_CASE("a cached token turns expired when its time comes, without a new signature check")
{
  const auto key = make_key(Alg::ES256, "ec");
  JwtVerifier verifier(config(), store_of({&key}));
  const auto token = sign(key, claims(kNow + 100));
  CHECK_FALSE(verifier.verify(token, kNow).cached);
  const auto again = verifier.verify(token, kNow + 1);
  CHECK(again.cached);
  CHECK(again.status == CredentialStatus::valid);
  CHECK(again.fingerprint == fingerprint(token));
  const auto later = verifier.verify(token, kNow + 131);
  CHECK(later.cached);
  CHECK(later.status == CredentialStatus::expired);
}

TEST_CASE("wrong issuer and wrong audience")
{
  const auto key = make_key(Alg::RS256, "k1");
  JwtVerifier verifier(config(), store_of({&key}));
  auto v = verifier.verify(sign(key, claims(kNow + 60, "payments")), kNow);
  CHECK(v.status == CredentialStatus::wrong_audience);
  v = verifier.verify(sign(key, claims(kNow + 60, "orders", "https://evil.example")), kNow);
  CHECK(v.status == CredentialStatus::wrong_issuer);
  CHECK(v.reason == "issuer \"https://evil.example\" is not trusted");
  auto body = nlohmann::json::parse(claims());
  body["aud"] = {"billing", "orders"};
  v = verifier.verify(sign(key, body.dump()), kNow);
  CHECK(v.status == CredentialStatus::valid);
  CHECK(v.token->audience == "orders");
  body["aud"] = {"billing", 7};
  CHECK(verifier.verify(sign(key, body.dump()), kNow).status == CredentialStatus::invalid);
}

TEST_CASE("kid selects the key; unknown kid and ambiguous kid-less tokens are rejected")
{
  const auto a = make_key(Alg::RS256, "k1");  // the process's two RSA keys (generation is slow)
  const auto b = make_key(Alg::RS256, "rsa");
  JwtVerifier verifier(config(), store_of({&a, &b}));
  CHECK(verifier.verify(sign(a, claims()), kNow).status == CredentialStatus::valid);
  CHECK(verifier.verify(sign(b, claims()), kNow).status == CredentialStatus::valid);
  auto stranger = make_key(Alg::EdDSA, "c");
  CHECK(verifier.verify(sign(stranger, claims()), kNow).reason == "unknown kid \"c\"");
  auto no_kid = make_key_copy(a);
  no_kid.kid.clear();
  CHECK(verifier.verify(sign(no_kid, claims()), kNow).status == CredentialStatus::invalid);
  // With one key only, a token without kid is matched by alg.
  JwtVerifier single(config(), store_of({&a}));
  CHECK(single.verify(sign(no_kid, claims()), kNow).status == CredentialStatus::valid);
}

TEST_CASE("malformed tokens get a clear reason")
{
  const auto key = make_key(Alg::ES256, "ec");
  JwtVerifier verifier(config(), store_of({&key}));
  const auto good = sign(key, claims());
  const std::string segments = "malformed token: expected three dot-separated segments";
  CHECK(verifier.verify("", kNow).reason == segments);
  CHECK(verifier.verify("abc", kNow).reason == segments);
  CHECK(verifier.verify("a.b", kNow).reason == segments);
  CHECK(verifier.verify(good + ".x", kNow).reason == segments);
  CHECK(verifier.verify(with_segment(good, 0, "e30*"), kNow).reason ==
        "malformed token: header is not base64url");
  CHECK(verifier.verify(with_segment(good, 0, base64url_encode("{\"alg\":")), kNow).reason ==
        "malformed token: header is not a JSON object");
  CHECK(verifier.verify(with_segment(good, 0, base64url_encode("[1]")), kNow).reason ==
        "malformed token: header is not a JSON object");
  CHECK(verifier.verify(with_segment(good, 2, "!!"), kNow).reason ==
        "malformed token: signature is not base64url");
  // A DER-encoded ECDSA signature is not the JWS r||s form.
  CHECK(verifier.verify(with_segment(good, 2, base64url_encode(std::string(72, 'x'))), kNow).reason ==
        "signature does not verify");
  // A correctly signed payload that is not JSON.
  auto not_json = sign_compact(key, R"({"alg":"ES256","kid":"ec"})", "not json");
  CHECK(verifier.verify(*not_json, kNow).reason == "malformed token: payload is not a JSON object");
  auto crit = sign_compact(key, R"({"alg":"ES256","kid":"ec","crit":["exp"]})", claims());
  CHECK(verifier.verify(*crit, kNow).status == CredentialStatus::invalid);
}

TEST_CASE("huge tokens are rejected before any parsing")
{
  const auto key = make_key(Alg::RS256, "k1");
  JwtVerifier verifier(config(), store_of({&key}));
  auto body = nlohmann::json::parse(claims());
  body["pad"] = std::string(20000, 'x');
  const auto v = verifier.verify(sign(key, body.dump()), kNow);
  CHECK(v.status == CredentialStatus::invalid);
  CHECK(v.reason == "token longer than 8192 bytes");
  CHECK(verifier.verify(std::string(1 << 20, '.'), kNow).status == CredentialStatus::invalid);
}

TEST_CASE("JWKS parsing: broken signing keys fail the set with the key's index, foreign keys are skipped")
{
  const auto bad = [](const std::string &key) {
    auto set = KeySet::parse(R"({"keys":[)" + key + "]}", "jwks.json");
    REQUIRE_FALSE(set.ok());
    return set.error();
  };
  CHECK(bad(R"({"kty":"RSA","n":"AQAB","e":"AQAB"})").find("jwks.json: keys[0]: RSA modulus of 24 bits") ==
        0);
  const std::string x = base64url_encode(std::string(32, '\x01'));
  CHECK(bad(R"({"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + x + R"("})")
            .find("point is not on curve") != std::string::npos);
  CHECK(bad(R"({"kty":"oct","k":"c2hvcnQ"})").find("shorter than 32 bytes") != std::string::npos);
  CHECK(bad(R"({"kty":"OKP","crv":"Ed25519","x":")" + x + R"(","alg":"RS256"})").find("does not fit") !=
        std::string::npos);
  CHECK(bad(R"({"kty":"OKP","crv":"Ed25519","x":"!!"})").find("not base64url") != std::string::npos);
  CHECK_FALSE(KeySet::parse("{\"keys\": 1}", "f").ok());
  CHECK_FALSE(KeySet::parse("not json", "f").ok());

  // What an identity provider publishes beside its signing keys is skipped, not fatal.
  const auto ed = make_key(Alg::EdDSA, "sig-1");
  const std::string foreign =
      R"({"kty":"RSA","use":"enc","alg":"RSA-OAEP","kid":"enc-1","n":"AQAB","e":"AQAB"},
    {"kty":"EC","crv":"secp256k1","kid":"k256","x":"AA","y":"AA"},
    {"kty":"OKP","crv":"X25519","x":")" +
      x + R"("},
    {"kty":"RSA","alg":"RSA1_5","kid":"rsa15","n":"AQAB","e":"AQAB"})";
  auto set = KeySet::parse(R"({"keys":[)" + foreign + "," + *public_jwk(ed) + "]}", "idp");
  REQUIRE_MESSAGE(set.ok(), set.error());
  CHECK(set->keys().size() == 1);
  REQUIRE(set->skipped().size() == 4);
  CHECK(set->skipped()[0] == "keys[0]: \"use\": \"enc\"");
  CHECK(set->skipped()[1] == "keys[1]: kty \"EC\", crv secp256k1 is not supported");
  CHECK(set->skipped()[3] == "keys[3]: \"alg\": \"RSA1_5\" is not an algorithm riskgate verifies");
  // Only foreign keys: nothing would ever verify, which is a configuration error.
  CHECK(KeySet::parse(R"({"keys":[)" + foreign + "]}", "idp")
            .error()
            .find("idp: no signing key riskgate can use") == 0);
  CHECK_FALSE(KeySet::parse(R"({"keys":[]})", "empty").ok());
}

TEST_CASE(
    "JWKS file reloads on change; rotated-out keys stop verifying at once, a bad file keeps the old keys")
{
  TempDir dir;
  const auto old_key = make_key(Alg::RS256, "k1");
  const auto new_key = make_key(Alg::EdDSA, "2026");
  const auto path = dir.write("jwks.json", *jwks_document({&old_key}));
  auto store = std::make_shared<KeyStore>();
  JwksFile file(path, store);
  REQUIRE(file.poll().ok());
  JwtVerifier verifier(config(), store);
  const auto old_token = sign(old_key, claims());
  CHECK(verifier.verify(old_token, kNow).status == CredentialStatus::valid);
  CHECK(verifier.verify(old_token, kNow).cached);
  CHECK(*file.poll() == false);

  dir.write("jwks.json", *jwks_document({&new_key}));
  auto polled = file.poll();
  REQUIRE(polled.ok());
  CHECK(*polled == true);
  const auto after = verifier.verify(old_token, kNow);
  CHECK_FALSE(after.cached);
  CHECK(after.reason == "unknown kid \"k1\"");
  CHECK(verifier.verify(sign(new_key, claims()), kNow).status == CredentialStatus::valid);

  dir.write("jwks.json", "{ broken");
  polled = file.poll();
  CHECK_FALSE(polled.ok());
  CHECK(polled.error().find("previous keys stay in force") != std::string::npos);
  CHECK(verifier.verify(sign(new_key, claims()), kNow).status == CredentialStatus::valid);
}

TEST_CASE("revocation by jti and by fingerprint, from a file that reloads")
{
  TempDir dir;
  const auto key = make_key(Alg::ES384, "ec");
  auto revocations = std::make_shared<RevocationList>(dir.write("revoked", "# none yet\n"));
  REQUIRE(revocations->poll().ok());
  JwtVerifier verifier(config(), store_of({&key}), revocations);
  const auto token = sign(key, claims());
  auto other = nlohmann::json::parse(claims());
  other["jti"] = "id-2";
  const auto token2 = sign(key, other.dump());
  CHECK(verifier.verify(token, kNow).status == CredentialStatus::valid);
  CHECK(verifier.verify(token, kNow).cached);

  dir.write("revoked", "jti id-1  # leaked in a ticket\n");
  REQUIRE(*revocations->poll());
  auto v = verifier.verify(token, kNow);
  CHECK(v.status == CredentialStatus::revoked);
  CHECK(v.reason == "token revoked");
  CHECK(verifier.verify(token2, kNow).status == CredentialStatus::valid);

  dir.write("revoked", "sha256 " + to_hex(fingerprint(token2)) + "\n");
  REQUIRE(*revocations->poll());
  CHECK(verifier.verify(token, kNow).status == CredentialStatus::valid);
  CHECK(verifier.verify(token2, kNow).status == CredentialStatus::revoked);

  dir.write("revoked", "sha256 abc\n");
  auto bad = revocations->poll();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find(":1: a fingerprint is 32 hex digits") != std::string::npos);
  CHECK(verifier.verify(token2, kNow).status == CredentialStatus::revoked);
}

TEST_CASE("the verified-token cache stays within its capacity")
{
  const auto key = make_key(Alg::EdDSA, "ed");
  auto c = config();
  c.cache_capacity = 128;
  JwtVerifier verifier(c, store_of({&key}));
  for (int i = 0; i < 1000; ++i) {
    auto body = nlohmann::json::parse(claims());
    body["jti"] = fmt::format("t{}", i);
    REQUIRE(verifier.verify(sign(key, body.dump()), kNow).status == CredentialStatus::valid);
  }
  CHECK(verifier.cache().size() <= 128);
  CHECK(verifier.cache().size() >= 64);
}

TEST_CASE("concurrent verification stays correct while keys are replaced underneath")
{
  const auto a = make_key(Alg::EdDSA, "a");
  const auto b = make_key(Alg::ES256, "b");
  const auto doc = *jwks_document({&a, &b});
  auto store = std::make_shared<KeyStore>();
  store->replace(KeyStore::Slot::file, *KeySet::parse(doc, "t"));
  JwtVerifier verifier(config(), store);
  const std::string tokens[] = {sign(a, claims()), sign(b, claims()),
                                sign(make_key(Alg::EdDSA, "a"), claims())};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        const auto &token = tokens[(i + t) % 3];
        const bool forged = &token == &tokens[2];
        const auto v = verifier.verify(token, kNow);
        if ((v.status == CredentialStatus::valid) == forged)
          ++wrong;
      }
    });
  for (int i = 0; i < 50; ++i) store->replace(KeyStore::Slot::file, *KeySet::parse(doc, "t"));
  for (auto &th : threads) th.join();
  CHECK(wrong == 0);
}

TEST_CASE("no single-character change to a valid token verifies, and none crashes the parser")
{
  // HS256: a signature check costs a microsecond, so every position and character can be tried.
  const auto key = make_key(Alg::HS256, "hs");
  auto hs_config = config();
  hs_config.allow_hs256 = true;
  JwtVerifier verifier(hs_config, store_of({&key}));
  const std::string token = sign(key, claims());
  REQUIRE(verifier.verify(token, kNow).status == CredentialStatus::valid);
  const std::string alphabet = "ABCXYZabcxyz0189-_.=+/ \"{}\\";
  int checked = 0;
  for (std::size_t pos = 0; pos < token.size(); ++pos)
    for (char c : alphabet) {
      if (token[pos] == c)
        continue;
      std::string mutated = token;
      mutated[pos] = c;
      const auto v = verifier.verify(mutated, kNow);
      CHECK_MESSAGE(v.status != CredentialStatus::valid, "position ", pos, " -> '", c, "'");
      ++checked;
    }
  // Truncations and extensions too.
  for (std::size_t len = 0; len < token.size(); len += 7)
    CHECK(verifier.verify(token.substr(0, len), kNow).status != CredentialStatus::valid);
  CHECK(verifier.verify(token + "A", kNow).status != CredentialStatus::valid);
  CHECK(checked > 5000);
}
