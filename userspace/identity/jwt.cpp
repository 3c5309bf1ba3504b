#include <riskgate/identity/jwt.h>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <riskgate/policy/policy.h>

namespace riskgate::identity {
namespace {

using Json = nlohmann::json;

// JWS ECDSA signatures are r || s, each zero-padded to the field size (RFC 7518 section 3.4);
// OpenSSL verifies DER.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t field)
{
  if (raw.size() != 2 * field)
    return std::nullopt;
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *r =
      BN_bin2bn(reinterpret_cast<const unsigned char *>(raw.data()), static_cast<int>(field), nullptr);
  BIGNUM *s = BN_bin2bn(reinterpret_cast<const unsigned char *>(raw.data() + field), static_cast<int>(field),
                        nullptr);
  if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char *der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0)
    return std::nullopt;
  std::string out(reinterpret_cast<char *>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool verify_signature(const Jwk &key, Alg alg, std::string_view input, std::string_view sig)
{
  if (alg == Alg::HS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
              reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &mac_len))
      return false;
    return sig.size() == mac_len && CRYPTO_memcmp(mac, sig.data(), mac_len) == 0;
  }
  std::string der;
  if (const std::size_t field = ecdsa_field_bytes(alg)) {
    auto converted = ecdsa_raw_to_der(sig, field);
    if (!converted)
      return false;
    der = std::move(*converted);
    sig = der;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX *pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, alg_digest(alg), nullptr, key.key.get()) <= 0)
    return false;
  // PS*: MGF1 with the same hash, salt as long as the hash (RFC 7518 section 3.5).
  if (is_rsa_pss(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
                          EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_digest(alg)) <= 0))
    return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char *>(input.data()), input.size()) == 1;
}

// A NumericDate claim (RFC 7519 section 2): absent -> 0, wrong type -> nullopt.
std::optional<std::int64_t> numeric_date(const Json &claims, const char *name)
{
  auto it = claims.find(name);
  if (it == claims.end())
    return 0;
  if (it->is_number_integer() && !it->is_number_unsigned())
    return it->get<std::int64_t>();
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return static_cast<std::int64_t>(it->get<std::uint64_t>());
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (std::isfinite(v) && v > -9e18 && v < 9e18)
      return static_cast<std::int64_t>(std::floor(v));
  }
  return std::nullopt;
}

// A string claim: absent -> "", wrong type -> nullopt.
std::optional<std::string> string_claim(const Json &obj, const char *name)
{
  auto it = obj.find(name);
  if (it == obj.end())
    return std::string();
  if (!it->is_string())
    return std::nullopt;
  return it->get<std::string>();
}

Verification failure(CredentialStatus status, std::string reason, const Fingerprint &fp,
                     std::shared_ptr<const VerifiedToken> token = nullptr)
{
  Verification v;
  v.status = status;
  v.reason = std::move(reason);
  v.fingerprint = fp;
  v.token = std::move(token);
  return v;
}

std::int64_t wall_clock_s()
{
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

template <class T>
bool contains(const std::vector<T> &v, const T &x)
{
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

Result<JwtConfig> jwt_config_from_policy(const policy::JwtAuth &auth)
{
  JwtConfig config;
  config.issuers = auth.issuers;
  config.audiences = auth.audiences;
  config.allow_hs256 = auth.allow_hs256;
  config.leeway_s = auth.leeway_s;
  for (const auto &name : auth.algorithms) {
    auto alg = parse_alg(name);
    if (!alg)
      return make_error(fmt::format("jwt.algorithms: unsupported algorithm \"{}\"", name));
    if (*alg == Alg::HS256 && !auth.allow_hs256)
      return make_error("jwt.algorithms: HS256 needs allowHS256: true");
    config.algorithms.push_back(*alg);
  }
  return config;
}

VerifiedTokenCache::VerifiedTokenCache(std::size_t capacity, std::size_t shards)
    : shard_count_(std::max<std::size_t>(shards, 1)),
      per_shard_(std::max<std::size_t>(capacity / shard_count_, 1)),
      shards_(new Shard[shard_count_])
{
}

std::shared_ptr<const VerifiedToken> VerifiedTokenCache::find(std::string_view token, std::uint64_t hash,
                                                              std::uint64_t generation) const
{
  Shard &s = shard(hash);
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(hash);
  if (it == s.entries.end() || it->second.generation != generation || it->second.token != token)
    return nullptr;
  return it->second.value;
}

void VerifiedTokenCache::insert(std::string_view token, std::uint64_t hash, std::uint64_t generation,
                                std::shared_ptr<const VerifiedToken> value)
{
  Shard &s = shard(hash);
  std::lock_guard lock(s.mu);
  if (s.entries.size() >= per_shard_ && !s.entries.count(hash))
    s.entries.erase(s.entries.begin());  // bucket order: an arbitrary victim, no LRU bookkeeping
  s.entries.insert_or_assign(hash, Entry{std::string(token), generation, std::move(value)});
}

std::size_t VerifiedTokenCache::size() const
{
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].entries.size();
  }
  return n;
}

JwtVerifier::JwtVerifier(JwtConfig config, std::shared_ptr<KeyStore> keys,
                         std::shared_ptr<RevocationList> revocations)
    : config_(std::move(config)),
      keys_(std::move(keys)),
      revocations_(std::move(revocations)),
      cache_(config_.cache_capacity),
      seed_(process_hash_seed())
{
}

std::uint64_t JwtVerifier::generation() const
{
  const std::uint64_t revocation = revocations_ ? revocations_->generation() : 0;
  return (keys_->generation() << 32) ^ revocation;
}

Verification JwtVerifier::verify(std::string_view token) const
{
  return verify(token, wall_clock_s());
}

Verification JwtVerifier::verify(std::string_view token, std::int64_t now_s) const
{
  if (token.size() > config_.max_token_bytes)
    return failure(CredentialStatus::invalid,
                   fmt::format("token longer than {} bytes", config_.max_token_bytes), fingerprint(token));
  const std::uint64_t hash = fast_hash(token, seed_);
  const std::uint64_t gen = generation();
  if (auto hit = cache_.find(token, hash, gen))
    return check_time_and_revocation(std::move(hit), now_s, true);
  Verification v = verify_uncached(token, now_s);
  // Only signature-verified tokens are cached; time is re-checked on every hit, so an entry that
  // outlives its exp answers "expired" without another signature check.
  if (v.token && (v.status == CredentialStatus::valid || v.status == CredentialStatus::not_yet_valid))
    cache_.insert(token, hash, gen, v.token);
  return v;
}

Verification JwtVerifier::check_time_and_revocation(std::shared_ptr<const VerifiedToken> token,
                                                    std::int64_t now_s, bool cached) const
{
  const std::int64_t leeway = config_.leeway_s;
  Verification v;
  v.fingerprint = token->fingerprint;
  v.cached = cached;
  if (token->expires_at != 0 && now_s >= token->expires_at + leeway) {
    v.status = CredentialStatus::expired;
    v.reason = "token expired";
  } else if (token->not_before != 0 && now_s + leeway < token->not_before) {
    v.status = CredentialStatus::not_yet_valid;
    v.reason = "token not yet valid (nbf)";
  } else if (token->issued_at != 0 && now_s + leeway < token->issued_at) {
    v.status = CredentialStatus::not_yet_valid;
    v.reason = "token issued in the future (iat)";
  } else if (!cached && revocations_ && revocations_->revoked(token->jti, token->fingerprint)) {
    v.status = CredentialStatus::revoked;
    v.reason = "token revoked";
  } else {
    v.status = CredentialStatus::valid;
  }
  v.token = std::move(token);
  return v;
}

namespace {

struct JoseHeader {
  Alg alg{};
  std::string alg_name;
  std::string kid;
};

// The protected header, refused unless its alg is one this verifier may use (never "none").
Result<JoseHeader> parse_header(std::string_view header_b64, const JwtConfig &config)
{
  const auto header_json = base64url_decode(header_b64);
  if (!header_json || header_json->empty())
    return make_error("malformed token: header is not base64url");
  const Json header = Json::parse(*header_json, nullptr, false);
  if (header.is_discarded() || !header.is_object())
    return make_error("malformed token: header is not a JSON object");
  const auto alg_name = string_claim(header, "alg");
  if (!alg_name || alg_name->empty())
    return make_error("malformed token: header has no alg");
  if (*alg_name == "none")
    return make_error("alg \"none\" is never accepted");
  const auto alg = parse_alg(*alg_name);
  if (!alg)
    return make_error(fmt::format("unsupported alg \"{}\"", *alg_name));
  if (*alg == Alg::HS256 && !config.allow_hs256)
    return make_error("alg HS256 is not enabled");
  if (!config.algorithms.empty() && !contains(config.algorithms, *alg))
    return make_error(fmt::format("alg {} is not allowed here", *alg_name));
  if (header.contains("crit"))
    return make_error("unsupported critical header parameters (crit)");
  const auto kid = string_claim(header, "kid");
  if (!kid)
    return make_error("malformed token: kid is not a string");
  return JoseHeader{*alg, *alg_name, *kid};
}

// The one key the header names; the algorithm comes from the key's allowed set, never the token alone.
Result<const Jwk *> select_key(const KeySet &keys, const JoseHeader &h)
{
  const auto candidates = keys.candidates(h.kid, h.alg);
  if (candidates.size() == 1)
    return candidates.front();
  if (!candidates.empty())
    return make_error(fmt::format("token names no single key: {} keys match kid \"{}\" and alg {}",
                                  candidates.size(), h.kid, h.alg_name));
  if (!h.kid.empty() && !keys.has_kid(h.kid))
    return make_error(fmt::format("unknown kid \"{}\"", h.kid));
  if (!h.kid.empty())
    return make_error(fmt::format("key \"{}\" does not allow alg {}", h.kid, h.alg_name));
  return make_error(fmt::format("no key allows alg {}", h.alg_name));
}

// Registered claims (RFC 7519 section 4.1) and cnf; a claim of the wrong type refuses the token.
Result<void> read_claims(const Json &claims, VerifiedToken &out)
{
  const auto iss = string_claim(claims, "iss"), sub = string_claim(claims, "sub"),
             azp = string_claim(claims, "azp"), client_id = string_claim(claims, "client_id"),
             jti = string_claim(claims, "jti");
  const auto exp = numeric_date(claims, "exp"), nbf = numeric_date(claims, "nbf"),
             iat = numeric_date(claims, "iat");
  if (!iss || !sub || !azp || !client_id || !jti || !exp || !nbf || !iat)
    return make_error("malformed token: a registered claim has the wrong type");
  out.issuer = *iss;
  out.subject = *sub;
  out.client_id = azp->empty() ? *client_id : *azp;
  out.jti = *jti;
  out.expires_at = *exp;
  out.not_before = *nbf;
  out.issued_at = *iat;
  if (auto cnf = claims.find("cnf"); cnf != claims.end()) {
    const auto x5t = cnf->is_object() ? string_claim(*cnf, "x5t#S256") : std::nullopt;
    if (!x5t)
      return make_error("malformed token: cnf is not an object of strings");
    out.cnf_x5t_s256 = *x5t;
  }
  return {};
}

// The audience this verifier accepts the token for: the first configured one it names, or without
// configured audiences its first.
Result<std::string> pick_audience(const Json &claims, const std::vector<std::string> &accepted)
{
  std::vector<std::string> audiences;
  if (auto aud = claims.find("aud"); aud != claims.end()) {
    const bool ok = aud->is_string() ||
                    (aud->is_array() &&
                     std::all_of(aud->begin(), aud->end(), [](const Json &a) { return a.is_string(); }));
    if (!ok)
      return make_error("malformed token: aud is not a string or array of strings");
    if (aud->is_string())
      audiences.push_back(aud->get<std::string>());
    else
      for (const auto &a : *aud) audiences.push_back(a.get<std::string>());
  }
  for (const auto &a : audiences)
    if (accepted.empty() || contains(accepted, a))
      return a;
  return std::string();
}

}  // namespace

Verification JwtVerifier::verify_uncached(std::string_view token, std::int64_t now_s) const
{
  const Fingerprint fp = fingerprint(token);
  const auto invalid = [&fp](const std::string &reason) {
    return failure(CredentialStatus::invalid, reason, fp);
  };
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return invalid("malformed token: expected three dot-separated segments");
  const auto header = parse_header(token.substr(0, dot1), config_);
  if (!header)
    return invalid(header.error());
  const auto keys = keys_->current();  // holds the key select_key points into
  const auto key = select_key(*keys, *header);
  if (!key)
    return invalid(key.error());
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature || signature->empty())
    return invalid("malformed token: signature is not base64url");
  if (!verify_signature(**key, header->alg, token.substr(0, dot2), *signature))
    return invalid("signature does not verify");

  const auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_json)
    return invalid("malformed token: payload is not base64url");
  const Json claims = Json::parse(*payload_json, nullptr, false);
  if (claims.is_discarded() || !claims.is_object())
    return invalid("malformed token: payload is not a JSON object");
  auto verified = std::make_shared<VerifiedToken>();
  verified->fingerprint = fp;
  verified->alg = header->alg;
  verified->kid = header->kid;
  if (auto read = read_claims(claims, *verified); !read)
    return invalid(read.error());
  auto audience = pick_audience(claims, config_.audiences);
  if (!audience)
    return invalid(audience.error());
  verified->audience = std::move(*audience);

  if (!config_.issuers.empty() && !contains(config_.issuers, verified->issuer)) {
    std::string reason = fmt::format("issuer \"{}\" is not trusted", verified->issuer);
    return failure(CredentialStatus::wrong_issuer, std::move(reason), fp, std::move(verified));
  }
  if (!config_.audiences.empty() && verified->audience.empty())
    return failure(CredentialStatus::wrong_audience, "token is not for this audience", fp,
                   std::move(verified));
  if (config_.require_exp && verified->expires_at == 0)
    return failure(CredentialStatus::invalid, "token has no exp", fp, std::move(verified));
  return check_time_and_revocation(std::move(verified), now_s, false);
}

Result<bool> JwksFile::poll()
{
  auto text = read_if_changed(path_, stamp_);
  if (!text)
    return make_error("JWKS " + text.error());
  if (!*text)
    return false;
  auto keys = KeySet::parse(**text, path_);
  if (!keys)
    return make_error(keys.error() + " (previous keys stay in force)");
  keys_->replace(KeyStore::Slot::file, std::move(*keys));
  return true;
}

}  // namespace riskgate::identity
