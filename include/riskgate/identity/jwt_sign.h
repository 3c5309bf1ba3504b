// Issuing JWS compact tokens: what tests, benchmarks and the demo use to mint tokens with keys made
// on the spot (never fixtures copied from elsewhere), and the public JWK a verifier needs for them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/result.h>

#include <riskgate/identity/jwk.h>

namespace riskgate::identity {

struct SigningKey {
  Alg alg = Alg::RS256;
  std::string kid;
  EvpKey key;          // private key (RSA, EC, Ed25519)
  std::string secret;  // HS256
};

// RSA 2048 for RS*/PS256, P-256/P-384 for ES256/ES384, Ed25519 for EdDSA, 32 random bytes for HS256.
Result<SigningKey> generate_signing_key(Alg alg, std::string kid);

// header_json and claims_json are used byte for byte (so that tests can forge any header).
// The signature is made with key.alg.
Result<std::string> sign_compact(const SigningKey &key, std::string_view header_json,
                                 std::string_view claims_json);

// {"alg": key.alg, "typ": "JWT", "kid": key.kid} + claims.
Result<std::string> sign_jwt(const SigningKey &key, std::string_view claims_json);

// Public JWK (JSON object text) of a key, with kid and alg; oct keys include the secret.
Result<std::string> public_jwk(const SigningKey &key);
Result<std::string> jwks_document(const std::vector<const SigningKey *> &keys);

}  // namespace riskgate::identity
