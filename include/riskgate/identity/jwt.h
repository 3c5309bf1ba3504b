// JWS compact (RFC 7515) / JWT (RFC 7519) verification with OpenSSL EVP, and a sharded cache of
// verified tokens so that a repeated token costs a hash lookup, not a signature check.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <riskgate/common/identity.h>
#include <riskgate/common/result.h>

#include <riskgate/identity/encoding.h>
#include <riskgate/identity/jwk.h>
#include <riskgate/identity/revocation.h>

namespace riskgate::policy {
struct JwtAuth;
}

namespace riskgate::identity {

struct JwtConfig {
  std::vector<std::string> issuers;    // empty: any iss
  std::vector<std::string> audiences;  // empty: aud not checked; else one must match
  std::vector<Alg> algorithms;         // empty: every asymmetric alg the keys allow
  bool allow_hs256 = false;            // symmetric keys verify only when explicitly configured
  std::uint32_t leeway_s = 60;         // clock skew tolerated on exp, nbf, iat
  bool require_exp = true;             // a token without exp would never expire
  std::size_t max_token_bytes = 8192;  // longer Authorization values are rejected before parsing
  std::size_t cache_capacity = 65536;  // verified tokens kept, across all shards
};

// policy::JwtAuth -> JwtConfig; an unknown algorithm name is a configuration error.
Result<JwtConfig> jwt_config_from_policy(const policy::JwtAuth &auth);

// The claims riskgate keeps from a verified token (the raw token is not kept).
struct VerifiedToken {
  Fingerprint fingerprint{};
  Alg alg = Alg::RS256;
  std::string kid;
  std::string issuer;
  std::string subject;
  std::string client_id;  // azp, else client_id
  std::string audience;   // the configured audience that matched (or the first aud)
  std::string jti;
  std::string cnf_x5t_s256;  // RFC 8705 certificate thumbprint confirmation, base64url; empty if none
  std::int64_t expires_at = 0;
  std::int64_t not_before = 0;
  std::int64_t issued_at = 0;
};

struct Verification {
  CredentialStatus status = CredentialStatus::none;
  // Set when the signature verified (valid, and also expired / wrong audience / revocation, so that
  // decisions can still name the subject). Shared with the cache: copying it is a refcount.
  std::shared_ptr<const VerifiedToken> token;
  Fingerprint fingerprint{};
  std::string reason;  // empty when valid; short, for error_description and the decision log
  bool cached = false;
};

// Cache of verified tokens: shards, each a mutex and a map from a seeded 64-bit hash to the entry,
// which holds the full token so that a hash collision is a miss, never a wrong answer.
class VerifiedTokenCache {
 public:
  explicit VerifiedTokenCache(std::size_t capacity, std::size_t shards = 64);
  std::shared_ptr<const VerifiedToken> find(std::string_view token, std::uint64_t hash,
                                            std::uint64_t generation) const;
  void insert(std::string_view token, std::uint64_t hash, std::uint64_t generation,
              std::shared_ptr<const VerifiedToken> value);
  std::size_t size() const;

 private:
  struct Entry {
    std::string token;
    std::uint64_t generation = 0;
    std::shared_ptr<const VerifiedToken> value;
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<std::uint64_t, Entry> entries;
  };
  Shard &shard(std::uint64_t hash) const { return shards_[(hash >> 48) % shard_count_]; }

  std::size_t shard_count_;
  std::size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

// Thread-safe verifier: one per configured issuer set (policy Service.auth.jwt).
class JwtVerifier {
 public:
  JwtVerifier(JwtConfig config, std::shared_ptr<KeyStore> keys,
              std::shared_ptr<RevocationList> revocations = nullptr);

  Verification verify(std::string_view token) const;  // now = CLOCK_REALTIME (coarse)
  Verification verify(std::string_view token, std::int64_t now_s) const;
  // The full check without the cache (neither read nor filled): one-off checks and benchmarks.
  Verification verify_uncached(std::string_view token, std::int64_t now_s) const;

  const JwtConfig &config() const { return config_; }
  const VerifiedTokenCache &cache() const { return cache_; }

 private:
  Verification check_time_and_revocation(std::shared_ptr<const VerifiedToken> token, std::int64_t now_s,
                                         bool cached) const;
  std::uint64_t generation() const;

  JwtConfig config_;
  std::shared_ptr<KeyStore> keys_;
  std::shared_ptr<RevocationList> revocations_;
  mutable VerifiedTokenCache cache_;
  std::uint64_t seed_;
};

// A JWKS file that is reloaded into a KeyStore when it changes. A file that fails to parse keeps
// the previous keys in force; the error is returned once per file version.
class JwksFile {
 public:
  JwksFile(std::string path, std::shared_ptr<KeyStore> keys) : path_(std::move(path)), keys_(std::move(keys))
  {
  }
  Result<bool> poll();  // Ok(true): new keys in force
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<KeyStore> keys_;
  std::optional<FileStamp> stamp_;
};

}  // namespace riskgate::identity
