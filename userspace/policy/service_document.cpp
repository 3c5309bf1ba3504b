// kind: Service: a gateway listener or a transparent port, its upstream, JWT auth and token bindings.
#include <algorithm>

#include <fmt/format.h>

#include "loader.h"

namespace riskgate::policy {

void Loader::service(const Document &doc)
{
  const auto spec = yaml_.fields(
      doc.spec, {"listen", "transparent", "upstream", "identity", "auth", "bindings"}, "Service spec");
  for (const auto &other : set_.services)
    if (other.name == doc.name && !doc.name.empty())
      yaml_.error(doc.metadata, fmt::format("duplicate Service '{}' (first defined at {})", doc.name,
                                            where_string(other.where)));
  if (!spec)
    return;
  Service service;
  service.name = doc.name;
  service.where = yaml_.at(doc.node);
  service_spec(service, *spec);
  if (service.listen.empty() && !service.transparent_port)
    yaml_.error(doc.spec, "Service needs listen (gateway) or transparent: {port}");
  if (!service.listen.empty() && service.transparent_port)
    yaml_.error(doc.spec, "Service has both listen and transparent; choose one");
  if (service.upstream.empty() && !service.transparent_port)
    yaml_.error(doc.spec, "Service has no upstream");
  if (!service.identity.empty() && service.transparent_port)
    yaml_.error(*spec->get("identity"),
                "identity is for gateway Services: a transparent Service calls whoever owns the original "
                "destination");
  set_.services.push_back(std::move(service));
}

void Loader::service_spec(Service &service, const Fields &spec)
{
  if (const auto listen = spec.get("listen")) {
    service.listen = yaml_.string(*listen, "listen").value_or("");
    if (const auto problem = check_endpoint(service.listen))
      yaml_.error(*listen, fmt::format("listen {}", *problem));
  }
  if (const auto transparent = spec.get("transparent"))
    if (const auto tf = yaml_.fields(*transparent, {"port"}, "transparent")) {
      if (const auto port = tf->get("port")) {
        if (const auto value = yaml_.integer(*port, "transparent.port", 1, 65535))
          service.transparent_port = static_cast<std::uint16_t>(*value);
      } else {
        yaml_.error(*transparent, "transparent needs a port");
      }
    }
  if (const auto upstream = spec.get("upstream")) {
    service.upstream = yaml_.string(*upstream, "upstream").value_or("");
    if (const auto problem = check_endpoint(service.upstream))
      yaml_.error(*upstream, fmt::format("upstream {}", *problem));
  }
  if (const auto identity = spec.get("identity"))
    service_identity(service, *identity);
  if (const auto auth = spec.get("auth"))
    if (const auto af = yaml_.fields(*auth, {"jwt"}, "auth"))
      if (const auto jwt_node = af->get("jwt")) {
        JwtAuth auth_out;
        jwt(auth_out, *jwt_node);
        service.jwt = std::move(auth_out);
      }
  if (const auto node = spec.get("bindings"))
    bindings(service, *node);
}

// A name of the set's identities: '*' and 'world' say nothing a Service without identity does not.
void Loader::service_identity(Service &service, const YAML::Node &node)
{
  service.identity = yaml_.string(node, "identity").value_or("");
  if (service.identity == "*" || service.identity == kWorld)
    yaml_.error(node, fmt::format("identity '{}' names no workload; name an identity or leave identity out "
                                  "(the upstream's address then decides)",
                                  service.identity));
  else if (!service.identity.empty())
    references_.push_back(
        {service.identity, yaml_.at(node), fmt::format("service '{}' identity", service.name)});
}

void Loader::bindings(Service &service, const YAML::Node &node)
{
  if (!yaml_.list(node, "bindings"))
    return;
  for (const auto &item : node) {
    const auto bf = yaml_.fields(item, {"subject", "identities"}, "a binding");
    if (!bf)
      continue;
    Binding binding;
    if (const auto subject = bf->get("subject"))
      binding.subject = yaml_.string(*subject, "subject").value_or("");
    else
      yaml_.error(item, "a binding needs a subject");
    if (const auto identities = bf->get("identities"))
      names(*identities, fmt::format("binding '{}' identities", binding.subject), false, binding.identities);
    else
      yaml_.error(item, "a binding needs identities");
    service.bindings.push_back(std::move(binding));
  }
}

void Loader::jwt(JwtAuth &auth, const YAML::Node &node)
{
  const auto jf = yaml_.fields(node,
                               {"required", "issuers", "audiences", "jwks", "jwksUrl", "algorithms",
                                "allowHS256", "leeway", "revocations"},
                               "jwt");
  if (!jf)
    return;
  if (const auto v = jf->get("required"))
    auth.required = yaml_.boolean(*v, "required").value_or(false);
  if (const auto v = jf->get("issuers"))
    auth.issuers = yaml_.strings(*v, "issuers");
  if (const auto v = jf->get("audiences"))
    auth.audiences = yaml_.strings(*v, "audiences");
  if (const auto v = jf->get("jwks"))
    auth.jwks_file = yaml_.string(*v, "jwks").value_or("");
  if (const auto v = jf->get("jwksUrl")) {
    auth.jwks_url = yaml_.string(*v, "jwksUrl").value_or("");
    // The agent fetches keys over TLS only: keys taken from plain http could be swapped in transit.
    if (auth.jwks_url.rfind("https://", 0) != 0)
      yaml_.error(*v, "jwksUrl must be an https:// URL (signing keys are not fetched over plain http)");
  }
  if (const auto v = jf->get("allowHS256"))
    auth.allow_hs256 = yaml_.boolean(*v, "allowHS256").value_or(false);
  if (const auto v = jf->get("algorithms")) {
    static constexpr std::string_view kKnown[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                                  "ES256", "ES384", "ES512", "EdDSA", "HS256"};
    auth.algorithms = yaml_.strings(*v, "algorithms");
    std::size_t i = 0;
    for (const auto &item : *v) {
      if (i >= auth.algorithms.size())
        break;
      const auto &alg = auth.algorithms[i++];
      if (std::find(std::begin(kKnown), std::end(kKnown), alg) == std::end(kKnown))
        yaml_.error(
            item,
            fmt::format("unknown algorithm '{}' (RS256..RS512, PS256..PS512, ES256..ES512, EdDSA, HS256)",
                        alg));
      else if (alg == "HS256" && !auth.allow_hs256)
        yaml_.error(item, "HS256 needs allowHS256: true (a shared secret can be used to forge tokens)");
    }
  }
  if (const auto v = jf->get("leeway"))
    auth.leeway_s = static_cast<std::uint32_t>(yaml_.duration(*v, "leeway", 0).value_or(60000) / 1000);
  if (const auto v = jf->get("revocations"))
    auth.revocation_file = yaml_.string(*v, "revocations").value_or("");
  if (auth.jwks_file.empty() && auth.jwks_url.empty())
    yaml_.error(node, "jwt needs jwks (a file) or jwksUrl");
  if (auth.issuers.empty())
    yaml_.error(node, "jwt needs at least one issuer");
}

}  // namespace riskgate::policy
