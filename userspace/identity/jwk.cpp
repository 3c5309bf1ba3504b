#include <riskgate/identity/jwk.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <riskgate/identity/encoding.h>

namespace riskgate::identity {
namespace {

struct AlgName {
  Alg alg;
  std::string_view name;
};
constexpr AlgName kAlgs[] = {{Alg::RS256, "RS256"}, {Alg::RS384, "RS384"}, {Alg::RS512, "RS512"},
                             {Alg::PS256, "PS256"}, {Alg::PS384, "PS384"}, {Alg::PS512, "PS512"},
                             {Alg::ES256, "ES256"}, {Alg::ES384, "ES384"}, {Alg::ES512, "ES512"},
                             {Alg::EdDSA, "EdDSA"}, {Alg::HS256, "HS256"}};

struct Curve {
  Alg alg;
  const char *jwk_name;
  const char *group;
  std::size_t field;
};
constexpr Curve kCurves[] = {{Alg::ES256, "P-256", "prime256v1", 32},
                             {Alg::ES384, "P-384", "secp384r1", 48},
                             {Alg::ES512, "P-521", "secp521r1", 66}};

const Curve *curve_by_name(std::string_view crv)
{
  for (const auto &c : kCurves)
    if (crv == c.jwk_name)
      return &c;
  return nullptr;
}

struct BnFree {
  void operator()(BIGNUM *bn) const { BN_free(bn); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

Result<std::string> b64_member(const nlohmann::json &jwk, const char *member)
{
  auto it = jwk.find(member);
  if (it == jwk.end() || !it->is_string())
    return make_error(fmt::format("missing string member \"{}\"", member));
  auto decoded = base64url_decode(it->get_ref<const std::string &>());
  if (!decoded || decoded->empty())
    return make_error(fmt::format("member \"{}\" is not base64url", member));
  return std::move(*decoded);
}

// Builds a public key of `type` from OSSL parameters.
Result<EvpKey> key_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld),
                                                                 OSSL_PARAM_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY *raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0)
    return make_error(openssl_error());
  EvpKey key(raw);
  // A point off the curve (invalid-curve attacks) or a degenerate RSA key fails here.
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr), EVP_PKEY_CTX_free);
  if (!check || EVP_PKEY_public_check(check.get()) <= 0)
    return make_error("public key check failed: " + openssl_error());
  return key;
}

Result<EvpKey> rsa_key(const nlohmann::json &jwk)
{
  auto n = b64_member(jwk, "n");
  if (!n)
    return make_error(n.error());
  auto e = b64_member(jwk, "e");
  if (!e)
    return make_error(e.error());
  if (static_cast<int>(n->size()) * 8 < kMinRsaBits)
    return make_error(fmt::format("RSA modulus of {} bits is below {}", n->size() * 8, kMinRsaBits));
  Bn bn_n(
      BN_bin2bn(reinterpret_cast<const unsigned char *>(n->data()), static_cast<int>(n->size()), nullptr));
  Bn bn_e(
      BN_bin2bn(reinterpret_cast<const unsigned char *>(e->data()), static_cast<int>(e->size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
    return make_error(openssl_error());
  return key_from_params("RSA", bld.get());
}

Result<EvpKey> ec_key(const nlohmann::json &jwk, std::string_view crv)
{
  const Curve *curve = curve_by_name(crv);
  if (!curve)
    return make_error(fmt::format("unsupported EC curve \"{}\"", crv));
  const char *group = curve->group;
  const std::size_t field = curve->field;
  auto x = b64_member(jwk, "x");
  if (!x)
    return make_error(x.error());
  auto y = b64_member(jwk, "y");
  if (!y)
    return make_error(y.error());
  if (x->size() != field || y->size() != field)
    return make_error(fmt::format("EC coordinates must be {} bytes for {}", field, crv));
  const std::string point = std::string(1, '\x04') + *x + *y;
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()))
    return make_error(openssl_error());
  return key_from_params("EC", bld.get());
}

Result<EvpKey> okp_key(const nlohmann::json &jwk, std::string_view crv)
{
  if (crv != "Ed25519")
    return make_error(fmt::format("unsupported OKP curve \"{}\"", crv));
  auto x = b64_member(jwk, "x");
  if (!x)
    return make_error(x.error());
  if (x->size() != 32)
    return make_error("Ed25519 public key must be 32 bytes");
  EVP_PKEY *raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char *>(x->data()), x->size());
  if (!raw)
    return make_error(openssl_error());
  return EvpKey(raw);
}

// Ok(nullopt): a key this verifier has no use for (encryption keys, curves and key types that
// sign nothing riskgate verifies), skipped with `why`: identity providers publish those in the
// same JWKS (Keycloak lists its RSA-OAEP key beside the signing keys). A signing key that is
// broken is an error.
Result<std::optional<Jwk>> parse_key(const nlohmann::json &entry, std::string &why)
{
  if (!entry.is_object())
    return make_error("not a JSON object");
  Jwk jwk;
  auto str = [&](const char *member) -> std::string {
    auto it = entry.find(member);
    return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  jwk.kid = str("kid");
  jwk.kty = str("kty");
  const std::string use = str("use"), crv = str("crv"), alg = str("alg");
  if (!use.empty() && use != "sig") {
    why = fmt::format("\"use\": \"{}\"", use);
    return std::optional<Jwk>();
  }
  if (!alg.empty() && !parse_alg(alg)) {  // RSA-OAEP, ECDH-ES, ES512, ...
    why = fmt::format("\"alg\": \"{}\" is not an algorithm riskgate verifies", alg);
    return std::optional<Jwk>();
  }
  const bool supported_curve = (jwk.kty == "EC" && curve_by_name(crv)) ||
                               (jwk.kty == "OKP" && crv == "Ed25519") || jwk.kty == "RSA" || jwk.kty == "oct";
  if (!supported_curve) {
    why = fmt::format("kty \"{}\"{}{} is not supported", jwk.kty, crv.empty() ? "" : ", crv ", crv);
    return std::optional<Jwk>();
  }

  if (jwk.kty == "RSA") {
    auto key = rsa_key(entry);
    if (!key)
      return make_error(key.error());
    jwk.key = std::move(*key);
    jwk.algorithms = {Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512};
  } else if (jwk.kty == "EC") {
    auto key = ec_key(entry, crv);
    if (!key)
      return make_error(key.error());
    jwk.key = std::move(*key);
    jwk.algorithms = {curve_by_name(crv)->alg};
  } else if (jwk.kty == "OKP") {
    auto key = okp_key(entry, crv);
    if (!key)
      return make_error(key.error());
    jwk.key = std::move(*key);
    jwk.algorithms = {Alg::EdDSA};
  } else if (jwk.kty == "oct") {
    auto k = b64_member(entry, "k");
    if (!k)
      return make_error(k.error());
    if (k->size() < 32)
      return make_error("HS256 secret shorter than 32 bytes");
    jwk.secret = std::move(*k);
    jwk.algorithms = {Alg::HS256};
  }

  if (!alg.empty()) {
    auto declared = parse_alg(alg);
    if (!declared ||
        std::find(jwk.algorithms.begin(), jwk.algorithms.end(), *declared) == jwk.algorithms.end())
      return make_error(fmt::format("\"alg\": \"{}\" does not fit a {} key", alg, jwk.kty));
    jwk.algorithms = {*declared};
  }
  return std::optional<Jwk>(std::move(jwk));
}

}  // namespace

std::string_view alg_name(Alg alg)
{
  for (const auto &a : kAlgs)
    if (a.alg == alg)
      return a.name;
  return "?";
}

std::optional<Alg> parse_alg(std::string_view name)
{
  for (const auto &a : kAlgs)
    if (a.name == name)
      return a.alg;
  return std::nullopt;
}

const EVP_MD *alg_digest(Alg alg)
{
  switch (alg) {
    case Alg::RS384:
    case Alg::PS384:
    case Alg::ES384: return EVP_sha384();
    case Alg::RS512:
    case Alg::PS512:
    case Alg::ES512: return EVP_sha512();
    case Alg::EdDSA: return nullptr;
    default: return EVP_sha256();
  }
}

bool is_rsa(Alg alg)
{
  return alg == Alg::RS256 || alg == Alg::RS384 || alg == Alg::RS512 || is_rsa_pss(alg);
}

bool is_rsa_pss(Alg alg)
{
  return alg == Alg::PS256 || alg == Alg::PS384 || alg == Alg::PS512;
}

const char *ecdsa_curve(Alg alg)
{
  for (const auto &c : kCurves)
    if (c.alg == alg)
      return c.jwk_name;
  return nullptr;
}

std::size_t ecdsa_field_bytes(Alg alg)
{
  for (const auto &c : kCurves)
    if (c.alg == alg)
      return c.field;
  return 0;
}

void EvpKeyDeleter::operator()(EVP_PKEY *key) const
{
  EVP_PKEY_free(key);
}

bool Jwk::allows(Alg alg) const
{
  return std::find(algorithms.begin(), algorithms.end(), alg) != algorithms.end();
}

Result<KeySet> KeySet::parse(std::string_view json, const std::string &origin)
{
  const auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded())
    return make_error(fmt::format("{}: not valid JSON", origin));
  auto keys = doc.is_object() ? doc.find("keys") : doc.end();
  if (!doc.is_object() || keys == doc.end() || !keys->is_array())
    return make_error(fmt::format("{}: expected an object with a \"keys\" array (RFC 7517 JWK Set)", origin));
  KeySet set;
  for (std::size_t i = 0; i < keys->size(); ++i) {
    std::string why;
    auto jwk = parse_key((*keys)[i], why);
    if (!jwk)
      return make_error(fmt::format("{}: keys[{}]: {}", origin, i, jwk.error()));
    if (*jwk)
      set.keys_.push_back(std::move(**jwk));
    else
      set.skipped_.push_back(fmt::format("keys[{}]: {}", i, why));
  }
  if (set.keys_.empty())
    return make_error(fmt::format("{}: no signing key riskgate can use{}", origin,
                                  set.skipped_.empty() ? "" : " (skipped " + set.skipped_.front() + ")"));
  return set;
}

std::vector<const Jwk *> KeySet::candidates(std::string_view kid, Alg alg) const
{
  std::vector<const Jwk *> out;
  for (const auto &key : keys_)
    if ((kid.empty() || key.kid == kid) && key.allows(alg))
      out.push_back(&key);
  return out;
}

bool KeySet::has_kid(std::string_view kid) const
{
  return std::any_of(keys_.begin(), keys_.end(), [&](const Jwk &k) { return k.kid == kid; });
}

void KeySet::append(const KeySet &other)
{
  keys_.insert(keys_.end(), other.keys_.begin(), other.keys_.end());
}

KeyStore::KeyStore() : current_(std::make_shared<const KeySet>()) {}

void KeyStore::replace(Slot slot, KeySet keys)
{
  std::lock_guard lock(writer_);
  slots_[static_cast<int>(slot)] = std::move(keys);
  KeySet merged = slots_[0];
  merged.append(slots_[1]);
  current_.store(std::make_shared<const KeySet>(std::move(merged)), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace riskgate::identity
