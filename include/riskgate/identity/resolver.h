// IdentityResolver: one RequestIdentity per request, from the kernel-attested peer identity and the
// request's bearer token, checked against the service's JWT settings and token bindings.
//
// Hot path (resolve): a snapshot load, a cache lookup for a repeated token, no file or network I/O.
// Everything that reads files or the network happens in refresh(), which the agent calls
// periodically (JWKS files, JWKS URLs when due, revocation lists, the static identity file).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/identity.h>
#include <riskgate/policy/policy.h>
#include <riskgate/proxy/request.h>
#include <riskgate/common/result.h>

#include <riskgate/identity/jwks_url.h>
#include <riskgate/identity/jwt.h>
#include <riskgate/identity/registry.h>

namespace riskgate::identity {

// What a token's binding says about the workload presenting it (policy::Binding: subject matches
// sub, azp or client_id, as a glob; identities are workload names, "*" for any). A token whose
// cnf.x5t#S256 does not match the connection's client certificate is a violation whatever the
// policy says (RFC 8705 section 3).
struct BindingCheck {
  BindingVerdict verdict = BindingVerdict::not_applicable;
  std::string reason;  // violation evidence (empty otherwise, except a cnf-only binding)
};
BindingCheck check_binding(const std::vector<policy::Binding> &bindings, const VerifiedToken &token,
                           std::string_view workload_name, const ClientCertificate *client_cert);

// base64url(SHA-256(DER)), the form of cnf.x5t#S256.
std::string x5t_s256(const ClientCertificate &cert);

class IdentityResolver {
 public:
  IdentityResolver(const PeerIdentitySource &peers, std::shared_ptr<WorkloadRegistry> registry);

  // Builds verifiers and bindings for these services (keyed by Service.name, which the proxy puts in
  // RequestView.service). Loads their JWKS and revocation files now; on any error nothing changes.
  Result<void> configure(const std::vector<policy::Service> &services);

  // Reloads changed files and fetches JWKS URLs that are due. Errors are collected, one per line;
  // a source that fails keeps its previous content in force.
  Result<void> refresh();

  RequestIdentity resolve(const RequestView &request, const ClientCertificate *client_cert = nullptr) const;

 private:
  struct ServiceAuth {
    bool required = false;
    std::unique_ptr<JwtVerifier> verifier;  // null: the service does not verify tokens
    std::vector<policy::Binding> bindings;
    std::shared_ptr<KeyStore> keys;
    std::unique_ptr<JwksFile> jwks_file;
    std::unique_ptr<JwksUrl> jwks_url;
    std::shared_ptr<RevocationList> revocations;
  };
  using ServiceTable = std::map<std::string, std::shared_ptr<ServiceAuth>, std::less<>>;

  const PeerIdentitySource &peers_;
  std::shared_ptr<WorkloadRegistry> registry_;
  std::mutex refresh_mu_;
  std::atomic<std::shared_ptr<const ServiceTable>> services_;
};

// A WWW-Authenticate value (RFC 6750 section 3): `Bearer realm="..."`, and when `error` is set
// also error="..." and error_description="..." with every character the grammar does not allow
// there (quote, backslash, control and non-ASCII bytes) replaced by an apostrophe. The one
// builder of the challenge, for every 401 the agent answers (agent/answer.cpp).
std::string bearer_challenge(std::string_view error = {}, std::string_view description = {},
                             std::string_view realm = "riskgate");

}  // namespace riskgate::identity
