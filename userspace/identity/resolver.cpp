#include <riskgate/identity/resolver.h>

#include <fnmatch.h>

#include <algorithm>

#include <fmt/format.h>

namespace riskgate::identity {
namespace {

// ASCII only, inline: std::tolower is a locale-aware call per character on the request path.
constexpr char ascii_lower(char c)
{
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c;
}

bool iequals(std::string_view a, std::string_view b)
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

bool glob_match(const std::string &pattern, const std::string &value)
{
  if (value.empty())
    return false;
  if (pattern.find_first_of("*?[") == std::string::npos)  // the common case: no glob, no fnmatch
    return pattern == value;
  return ::fnmatch(pattern.c_str(), value.c_str(), 0) == 0;
}

std::string join(const std::vector<std::string> &items)
{
  std::string out;
  for (const auto &item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The bearer token of a request, or why there is none usable.
struct BearerToken {
  std::string_view token;
  bool present = false;  // an Authorization header was sent
  std::string error;     // present but unusable
};

BearerToken bearer_token(const RequestView &request)
{
  BearerToken out;
  for (const auto &h : request.headers) {
    if (!iequals(h.name, "authorization"))
      continue;
    if (out.present) {
      out.error = "more than one Authorization header";
      return out;
    }
    out.present = true;
    std::string_view value = h.value;
    const auto space = value.find(' ');
    if (space == std::string_view::npos || !iequals(value.substr(0, space), "bearer")) {
      out.error = "Authorization scheme is not Bearer";
      continue;
    }
    value.remove_prefix(space);
    value.remove_prefix(std::min(value.find_first_not_of(' '), value.size()));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty())
      out.error = "empty bearer token";
    out.token = value;
  }
  return out;
}

}  // namespace

std::string x5t_s256(const ClientCertificate &cert)
{
  return base64url_encode(
      std::string_view(reinterpret_cast<const char *>(cert.sha256.data()), cert.sha256.size()));
}

BindingCheck check_binding(const std::vector<policy::Binding> &bindings, const VerifiedToken &token,
                           std::string_view workload_name, const ClientCertificate *client_cert)
{
  if (!token.cnf_x5t_s256.empty()) {
    if (!client_cert)
      return {BindingVerdict::violation,
              "token is bound to a client certificate (cnf.x5t#S256) but the connection presented none"};
    if (x5t_s256(*client_cert) != token.cnf_x5t_s256)
      return {BindingVerdict::violation, "client certificate does not match the token's cnf.x5t#S256"};
  }
  std::vector<std::string> allowed;
  const policy::Binding *matched = nullptr;
  for (const auto &b : bindings) {
    if (!glob_match(b.subject, token.subject) && !glob_match(b.subject, token.client_id))
      continue;
    matched = &b;
    for (const auto &id : b.identities) {
      if (id == "*" || id == workload_name)
        return {BindingVerdict::bound, {}};  // evidence is for violations; nothing to format here
      allowed.push_back(id);
    }
  }
  if (!matched) {
    if (!token.cnf_x5t_s256.empty())
      return {BindingVerdict::bound, "client certificate matches the token's cnf.x5t#S256"};
    return {};
  }
  const std::string &who = token.subject.empty() ? token.client_id : token.subject;
  return {BindingVerdict::violation, fmt::format("token of {} presented by workload {}; bound to {}", who,
                                                 workload_name, join(allowed))};
}

IdentityResolver::IdentityResolver(const PeerIdentitySource &peers,
                                   std::shared_ptr<WorkloadRegistry> registry)
    : peers_(peers), registry_(std::move(registry)), services_(std::make_shared<const ServiceTable>())
{
}

Result<void> IdentityResolver::configure(const std::vector<policy::Service> &services)
{
  auto table = std::make_shared<ServiceTable>();
  for (const auto &service : services) {
    auto auth = std::make_shared<ServiceAuth>();
    auth->bindings = service.bindings;
    const std::string at = service.where.file.empty()
                               ? fmt::format("service {}: ", service.name)
                               : fmt::format("{}:{}:{}: service {}: ", service.where.file, service.where.line,
                                             service.where.column, service.name);
    if (service.jwt) {
      const auto &jwt = *service.jwt;
      auto config = jwt_config_from_policy(jwt);
      if (!config)
        return make_error(at + config.error());
      if (jwt.jwks_file.empty() && jwt.jwks_url.empty())
        return make_error(at + "auth.jwt needs jwks (a file) or jwksUrl");
      auth->required = jwt.required;
      auth->keys = std::make_shared<KeyStore>();
      if (!jwt.jwks_file.empty()) {
        auth->jwks_file = std::make_unique<JwksFile>(jwt.jwks_file, auth->keys);
        if (auto loaded = auth->jwks_file->poll(); !loaded)
          return make_error(at + loaded.error());
      }
      if (!jwt.jwks_url.empty()) {
        if (auto url = parse_https_url(jwt.jwks_url); !url)
          return make_error(at + url.error());
        auth->jwks_url = std::make_unique<JwksUrl>(jwt.jwks_url, auth->keys);
      }
      if (!jwt.revocation_file.empty()) {
        auth->revocations = std::make_shared<RevocationList>(jwt.revocation_file);
        if (auto loaded = auth->revocations->poll(); !loaded)
          return make_error(at + loaded.error());
      }
      auth->verifier = std::make_unique<JwtVerifier>(std::move(*config), auth->keys, auth->revocations);
    }
    table->emplace(service.name, std::move(auth));
  }
  std::lock_guard lock(refresh_mu_);
  services_.store(std::move(table), std::memory_order_release);
  return {};
}

Result<void> IdentityResolver::refresh()
{
  std::lock_guard lock(refresh_mu_);
  std::string errors;
  auto note = [&](const auto &result) {
    if (!result)
      errors += (errors.empty() ? "" : "\n") + result.error();
  };
  const auto table = services_.load(std::memory_order_acquire);
  for (const auto &[name, auth] : *table) {
    if (auth->jwks_file)
      note(auth->jwks_file->poll());
    if (auth->jwks_url)
      note(auth->jwks_url->poll());
    if (auth->revocations)
      note(auth->revocations->poll());
  }
  if (registry_)
    note(registry_->poll_static_file());
  if (!errors.empty())
    return make_error(std::move(errors));
  return {};
}

RequestIdentity IdentityResolver::resolve(const RequestView &request,
                                          const ClientCertificate *client_cert) const
{
  RequestIdentity out;
  out.source = request.peer;
  // Who is calling comes from the kernel only: nothing the client sends is consulted here.
  out.workload = peers_.peer_identity(request.peer, request.local, request.socket_cookie);
  const auto snapshot = registry_ ? registry_->snapshot() : nullptr;
  out.workload_name = snapshot ? std::string(snapshot->name_of(out.workload)) : std::string("world");

  const auto table = services_.load(std::memory_order_acquire);
  const auto it = table->find(request.service);
  const ServiceAuth *auth = it == table->end() ? nullptr : it->second.get();
  out.credential_required = auth && auth->required;

  const BearerToken bearer = bearer_token(request);
  if (!bearer.error.empty()) {
    if (!bearer.token.empty())
      out.token_fingerprint = to_hex(fingerprint(bearer.token));
    out.credential = CredentialStatus::invalid;
    out.failure_reason = bearer.error;
    return out;
  }
  if (!bearer.present) {
    if (out.credential_required)
      out.failure_reason = "no bearer token";
    return out;
  }
  if (!auth || !auth->verifier) {
    // This service does not verify tokens: only the fingerprint is kept (roaming signal).
    out.token_fingerprint = to_hex(fingerprint(bearer.token));
    return out;
  }

  // The verifier's fingerprint comes from its cache on a repeated token: no SHA-256 per request.
  const Verification v = auth->verifier->verify(bearer.token);
  out.credential = v.status;
  out.failure_reason = v.reason;
  out.token_fingerprint = to_hex(v.fingerprint);
  if (!v.token)
    return out;
  const VerifiedToken &token = *v.token;
  out.subject = token.subject;
  out.client_id = token.client_id;
  out.issuer = token.issuer;
  out.jti = token.jti;
  out.expires_at = token.expires_at > 0 ? static_cast<std::uint64_t>(token.expires_at) : 0;
  BindingCheck binding = check_binding(auth->bindings, token, out.workload_name, client_cert);
  out.binding = binding.verdict;
  out.binding_reason = std::move(binding.reason);
  return out;
}

std::string bearer_challenge(std::string_view error, std::string_view description, std::string_view realm)
{
  std::string header = fmt::format("Bearer realm=\"{}\"", realm);
  if (error.empty())
    return header;
  header += fmt::format(", error=\"{}\", error_description=\"", error);
  // error_description allows %x20-21 / %x23-5B / %x5D-7E only.
  for (const char c : description) {
    const auto u = static_cast<unsigned char>(c);
    header += c == '"' || c == '\\' || u < 0x20 || u > 0x7e ? '\'' : c;
  }
  header += '"';
  return header;
}

}  // namespace riskgate::identity
