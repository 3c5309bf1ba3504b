// JSON Web Keys (RFC 7517/7518/8037) as OpenSSL EVP keys, and the set of keys a verifier trusts.
// A key says which algorithms it may verify; a token's "alg" header only selects among those
// (never "none", never HS256 with an asymmetric key: no algorithm confusion).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/result.h>

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_st EVP_MD;

namespace riskgate::identity {

enum class Alg : std::uint8_t { RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256 };
std::string_view alg_name(Alg alg);
std::optional<Alg> parse_alg(std::string_view name);  // nullopt for "none" and anything unknown
const EVP_MD *alg_digest(Alg alg);                    // nullptr for EdDSA (no prehash)
bool is_rsa(Alg alg);                                 // RS* and PS*
bool is_rsa_pss(Alg alg);                             // PS*
// ECDSA: the curve's JWK name and the size of r and s in the JWS r||s signature; nullptr / 0 for
// other algorithms.
const char *ecdsa_curve(Alg alg);
std::size_t ecdsa_field_bytes(Alg alg);

struct EvpKeyDeleter {
  void operator()(EVP_PKEY *key) const;
};
using EvpKey = std::unique_ptr<EVP_PKEY, EvpKeyDeleter>;

struct Jwk {
  std::string kid;                // may be empty
  std::string kty;                // RSA, EC, OKP, oct
  std::vector<Alg> algorithms;    // what this key may verify ("alg" member narrows it to one)
  std::shared_ptr<EVP_PKEY> key;  // public key (RSA, EC, OKP)
  std::string secret;             // oct: the HMAC secret

  bool allows(Alg alg) const;
};

// Minimum RSA modulus accepted in a JWKS (RFC 7518 section 3.3 requires 2048 bits).
inline constexpr int kMinRsaBits = 2048;

// An immutable set of keys.
class KeySet {
 public:
  // Parses {"keys": [...]}. `origin` names the source in errors ("/etc/riskgate/jwks.json").
  // Keys riskgate has no use for ("use": "enc", encryption algs, other curves) are skipped and
  // listed in skipped(); a broken signing key (bad base64, off-curve point, RSA under 2048 bits,
  // an alg that does not fit the key) fails the whole set, naming the key, and so does a set with
  // no usable key: a half-read key set is a configuration error, not a partial load.
  static Result<KeySet> parse(std::string_view json, const std::string &origin);
  const std::vector<std::string> &skipped() const { return skipped_; }

  // Keys a token may be checked against: the one with this kid, or with no kid in the token, every
  // key that allows the alg.
  std::vector<const Jwk *> candidates(std::string_view kid, Alg alg) const;
  bool has_kid(std::string_view kid) const;
  const std::vector<Jwk> &keys() const { return keys_; }
  void append(const KeySet &other);

 private:
  std::vector<Jwk> keys_;
  std::vector<std::string> skipped_;
};

// The current keys of one verifier, from up to two sources (a JWKS file, a JWKS URL), replaced
// atomically. Readers take a snapshot; generation() changes on every replacement so that caches of
// verified tokens notice.
class KeyStore {
 public:
  enum class Slot { file = 0, url = 1 };
  KeyStore();
  std::shared_ptr<const KeySet> current() const { return current_.load(std::memory_order_acquire); }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  void replace(Slot slot, KeySet keys);

 private:
  std::mutex writer_;
  KeySet slots_[2];
  std::atomic<std::shared_ptr<const KeySet>> current_;
  std::atomic<std::uint64_t> generation_{1};
};

}  // namespace riskgate::identity
