// kind: Identity, and the static identity file, whose entries have the same spec.
#include <fmt/format.h>

#include <riskgate/common/net.h>
#include <riskgate/policy/identity_file.h>

#include "loader.h"

namespace riskgate::policy {

namespace {

// One selector: exactly one of cgroup, kubernetes, cidr.
std::optional<IdentitySelector> read_selector(YamlReader &yaml, const YAML::Node &item)
{
  const auto selector = yaml.fields(item, {"cgroup", "kubernetes", "cidr"}, "a selector");
  if (!selector)
    return std::nullopt;
  if (selector->size() != 1) {
    yaml.error(item, "a selector has exactly one of cgroup, kubernetes, cidr");
    return std::nullopt;
  }
  IdentitySelector out;
  if (const auto cgroup = selector->get("cgroup")) {
    out.cgroup = yaml.string(*cgroup, "cgroup").value_or("");
    if (out.cgroup.empty() || out.cgroup.front() != '/')
      yaml.error(*cgroup, "cgroup must be a path (glob) starting with '/'");
  } else if (const auto k8s = selector->get("kubernetes")) {
    const auto kf = yaml.fields(*k8s, {"namespace", "serviceAccount"}, "kubernetes selector");
    if (!kf)
      return std::nullopt;
    if (const auto ns = kf->get("namespace"))
      out.k8s_namespace = yaml.string(*ns, "namespace").value_or("");
    if (const auto sa = kf->get("serviceAccount"))
      out.k8s_service_account = yaml.string(*sa, "serviceAccount").value_or("");
    if (out.k8s_namespace.empty())
      yaml.error(*k8s, "kubernetes selector needs a namespace");
  } else if (const auto cidr = selector->get("cidr")) {
    out.cidr = yaml.string(*cidr, "cidr").value_or("");
    if (const auto parsed = net::parse_prefix(out.cidr); !parsed)
      yaml.error(*cidr, parsed.error());
  }
  return out;
}

// An identity file entry's name: required, and not the built-in 'world'.
std::string entry_name(YamlReader &yaml, const Fields &fields, const YAML::Node &entry)
{
  const auto name = fields.get("name");
  if (!name) {
    yaml.error(entry, "an identity needs a name");
    return "";
  }
  std::string out = yaml.string(*name, "name").value_or("");
  if (out == kWorld)
    yaml.error(*name, std::string(kWorldIsBuiltIn));
  return out;
}

// identities: [{name, spiffe, selectors}]
void read_identity_list(YamlReader &yaml, const YAML::Node &doc, std::vector<Identity> &out)
{
  const auto top = yaml.fields(doc, {"identities"}, "the identity file");
  if (!top)
    return;
  const auto list = top->get("identities");
  if (!list) {
    yaml.error(doc, "the identity file has no identities list");
    return;
  }
  if (!yaml.list(*list, "identities", "of {name, spiffe, selectors}"))
    return;
  for (const auto &entry : *list) {
    const auto fields = yaml.fields(entry, {"name", "spiffe", "selectors"}, "an identity");
    if (!fields)
      continue;
    Identity identity{entry_name(yaml, *fields, entry), {}, {}, yaml.at(entry)};
    read_identity_spec(yaml, *fields, identity);
    out.push_back(std::move(identity));
  }
}

}  // namespace

void read_identity_spec(YamlReader &yaml, const Fields &spec, Identity &identity)
{
  if (const auto spiffe = spec.get("spiffe")) {
    identity.spiffe = yaml.string(*spiffe, "spiffe").value_or("");
    if (!identity.spiffe.empty() && identity.spiffe.rfind("spiffe://", 0) != 0)
      yaml.error(*spiffe, fmt::format("spiffe '{}' must start with spiffe://", identity.spiffe));
  }
  const auto selectors = spec.get("selectors");
  if (!selectors || !yaml.list(*selectors, "selectors"))
    return;
  for (const auto &item : *selectors)
    if (auto selector = read_selector(yaml, item))
      identity.selectors.push_back(std::move(*selector));
}

void Loader::identity(const Document &doc)
{
  const auto spec = yaml_.fields(doc.spec, {"spiffe", "selectors"}, "Identity spec");
  for (const auto &other : set_.identities)
    if (other.name == doc.name && !doc.name.empty())
      yaml_.error(doc.metadata, fmt::format("duplicate Identity '{}' (first defined at {})", doc.name,
                                            where_string(other.where)));
  if (doc.name == kWorld)
    yaml_.error(doc.metadata, std::string(kWorldIsBuiltIn));
  Identity identity{doc.name, {}, {}, yaml_.at(doc.node)};
  if (spec)
    read_identity_spec(yaml_, *spec, identity);
  set_.identities.push_back(std::move(identity));
}

IdentityFileResult load_identity_file(std::string_view text, const std::string &file)
{
  YamlReader yaml;
  const auto documents = yaml.documents(text, file);
  std::vector<Identity> identities;
  if (documents.size() > 1)
    yaml.error(documents[1], "an identity file has one document");
  if (!documents.empty())
    read_identity_list(yaml, documents.front(), identities);
  else if (yaml.ok())
    yaml.error_at({file, 0, 0}, "the identity file is empty; it needs an identities list");
  if (!yaml.ok())
    return {std::nullopt, yaml.take_diagnostics()};
  return {std::move(identities), {}};
}

}  // namespace riskgate::policy
