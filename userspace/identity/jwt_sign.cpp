#include <riskgate/identity/jwt_sign.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <riskgate/identity/encoding.h>

namespace riskgate::identity {
namespace {

std::string bn_bytes(const BIGNUM *bn, int width)
{
  std::string out(static_cast<std::size_t>(width > 0 ? width : BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(out.size()));
  return out;
}

Result<std::string> der_to_raw(const std::string &der, int field)
{
  const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
  ECDSA_SIG *sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig)
    return make_error("ECDSA signature is not DER");
  std::string raw = bn_bytes(ECDSA_SIG_get0_r(sig), field) + bn_bytes(ECDSA_SIG_get0_s(sig), field);
  ECDSA_SIG_free(sig);
  return raw;
}

Result<std::string> bn_param(EVP_PKEY *key, const char *name)
{
  BIGNUM *bn = nullptr;
  if (!EVP_PKEY_get_bn_param(key, name, &bn))
    return make_error(fmt::format("key has no {}", name));
  std::string out = bn_bytes(bn, 0);
  BN_free(bn);
  return out;
}

}  // namespace

Result<SigningKey> generate_signing_key(Alg alg, std::string kid)
{
  SigningKey out;
  out.alg = alg;
  out.kid = std::move(kid);
  EVP_PKEY *raw = nullptr;
  if (alg == Alg::HS256) {
    out.secret.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char *>(out.secret.data()), 32) != 1)
      return make_error("RAND_bytes failed");
    return out;
  }
  if (is_rsa(alg))
    raw = EVP_RSA_gen(2048u);
  else if (const char *curve = ecdsa_curve(alg))
    raw = EVP_EC_gen(curve);
  else
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!raw)
    return make_error(fmt::format("generating a {} key failed", alg_name(alg)));
  out.key.reset(raw);
  return out;
}

Result<std::string> sign_compact(const SigningKey &key, std::string_view header_json,
                                 std::string_view claims_json)
{
  const std::string input = base64url_encode(header_json) + "." + base64url_encode(claims_json);
  std::string sig;
  if (key.alg == Alg::HS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
         reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
    sig.assign(reinterpret_cast<char *>(mac), len);
  } else {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX *pctx = nullptr;
    if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, alg_digest(key.alg), nullptr, key.key.get()) <= 0)
      return make_error("EVP_DigestSignInit failed");
    if (is_rsa_pss(key.alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_digest(key.alg)) <= 0))
      return make_error("PSS parameters rejected");
    std::size_t len = 0;
    const auto *data = reinterpret_cast<const unsigned char *>(input.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) <= 0)
      return make_error("EVP_DigestSign (size) failed");
    sig.resize(len);
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(sig.data()), &len, data, input.size()) <=
        0)
      return make_error("EVP_DigestSign failed");
    sig.resize(len);
    if (const std::size_t field = ecdsa_field_bytes(key.alg)) {
      auto raw = der_to_raw(sig, static_cast<int>(field));
      if (!raw)
        return make_error(raw.error());
      sig = std::move(*raw);
    }
  }
  return input + "." + base64url_encode(sig);
}

Result<std::string> sign_jwt(const SigningKey &key, std::string_view claims_json)
{
  nlohmann::json header = {{"alg", alg_name(key.alg)}, {"typ", "JWT"}};
  if (!key.kid.empty())
    header["kid"] = key.kid;
  return sign_compact(key, header.dump(), claims_json);
}

Result<std::string> public_jwk(const SigningKey &key)
{
  nlohmann::json jwk = {{"alg", alg_name(key.alg)}, {"use", "sig"}};
  if (!key.kid.empty())
    jwk["kid"] = key.kid;
  switch (key.alg) {
    case Alg::HS256:
      jwk["kty"] = "oct";
      jwk["k"] = base64url_encode(key.secret);
      break;
    case Alg::EdDSA: {
      unsigned char pub[32];
      std::size_t len = sizeof pub;
      if (!EVP_PKEY_get_raw_public_key(key.key.get(), pub, &len))
        return make_error("Ed25519 public key unavailable");
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = base64url_encode(std::string_view(reinterpret_cast<char *>(pub), len));
      break;
    }
    case Alg::ES256:
    case Alg::ES384:
    case Alg::ES512: {
      auto x = bn_param(key.key.get(), OSSL_PKEY_PARAM_EC_PUB_X);
      auto y = bn_param(key.key.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
      if (!x || !y)
        return make_error("EC public point unavailable");
      const std::size_t field = ecdsa_field_bytes(key.alg);
      jwk["kty"] = "EC";
      jwk["crv"] = ecdsa_curve(key.alg);
      jwk["x"] = base64url_encode(std::string(field - x->size(), '\0') + *x);
      jwk["y"] = base64url_encode(std::string(field - y->size(), '\0') + *y);
      break;
    }
    default: {
      auto n = bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_N);
      auto e = bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_E);
      if (!n || !e)
        return make_error("RSA public key unavailable");
      jwk["kty"] = "RSA";
      jwk["n"] = base64url_encode(*n);
      jwk["e"] = base64url_encode(*e);
    }
  }
  return jwk.dump();
}

Result<std::string> jwks_document(const std::vector<const SigningKey *> &keys)
{
  nlohmann::json doc = {{"keys", nlohmann::json::array()}};
  for (const auto *key : keys) {
    auto jwk = public_jwk(*key);
    if (!jwk)
      return make_error(jwk.error());
    doc["keys"].push_back(nlohmann::json::parse(*jwk));
  }
  return doc.dump();
}

}  // namespace riskgate::identity
