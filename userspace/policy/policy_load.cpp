// Policy documents -> policy::PolicySet, validated. Every problem is collected with its file:line:column
// (yaml-cpp marks) and reported together; a set with any error is never returned, so a half-valid
// policy can not be installed. Cross-document references (identities named by rules, bindings and
// lists) are checked once every file is read, so documents may come in any order.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <riskgate/policy/embedded.h>
#include <riskgate/common/duration.h>
#include <riskgate/common/errors.h>
#include <riskgate/policy/policy.h>

#include <riskgate/common/net.h>
#include <riskgate/policy/params.h>
#include <riskgate/policy/route.h>

namespace riskgate::policy {

std::string to_string(const Diagnostic &diagnostic)
{
  if (diagnostic.where.line == 0)
    return fmt::format("{}: {}", diagnostic.where.file, diagnostic.message);
  return fmt::format("{}:{}:{}: {}", diagnostic.where.file, diagnostic.where.line, diagnostic.where.column,
                     diagnostic.message);
}

namespace {

constexpr std::string_view kApiVersion = "riskgate.dev/v1";
constexpr std::string_view kWorld = "world";

std::string where_string(const SourceLocation &where)
{
  return fmt::format("{}:{}:{}", where.file, where.line, where.column);
}

bool valid_name(std::string_view name)
{
  if (name.empty() || name.size() > 253)
    return false;
  for (const char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '-' || c == '.'))
      return false;
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

// "HOST:PORT", "[v6]:PORT" or ":PORT" (every address).
std::optional<std::string> check_endpoint(std::string_view text)
{
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return fmt::format("'{}' is not HOST:PORT", text);
  const auto port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return fmt::format("'{}' has no valid port (1..65535)", text);
  const auto host = text.substr(0, colon);
  if (host.empty())
    return std::nullopt;
  if (host.front() == '[' && host.back() != ']')
    return fmt::format("'{}': an IPv6 host goes in brackets, [::1]:8080", text);
  if (host.front() != '[' && host.find(':') != std::string_view::npos)
    return fmt::format("'{}': an IPv6 host goes in brackets, [::1]:8080", text);
  return std::nullopt;
}

// A name used somewhere that must be defined by some document of the set.
struct Reference {
  std::string name;
  SourceLocation where;
  std::string context;  // "rule 'x' from"
  bool services_too = false;
};

// One YAML mapping, its keys checked against what is allowed at that place.
struct Fields {
  std::vector<std::pair<std::string, YAML::Node>> entries;
  std::optional<YAML::Node> get(std::string_view key) const
  {
    for (const auto &[name, value] : entries)
      if (name == key)
        return value;
    return std::nullopt;
  }
};

class Loader {
 public:
  Loader() : digest_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(digest_, EVP_sha256(), nullptr); }
  ~Loader() { EVP_MD_CTX_free(digest_); }
  Loader(const Loader &) = delete;
  Loader &operator=(const Loader &) = delete;

  void add_text(std::string_view text, const std::string &file);
  void error_at(const SourceLocation &where, std::string message)
  {
    diagnostics_.push_back({where, std::move(message)});
  }
  LoadResult finish();

 private:
  SourceLocation at(const YAML::Node &node) const
  {
    const auto mark = node.Mark();
    return {file_, mark.line + 1, mark.column + 1};
  }
  void error(const YAML::Node &node, std::string message) { error_at(at(node), std::move(message)); }

  std::optional<Fields> fields(const YAML::Node &node, std::initializer_list<std::string_view> allowed,
                               std::string_view what);
  std::optional<std::string> string(const YAML::Node &node, std::string_view what);
  std::optional<double> number(const YAML::Node &node, std::string_view what, double min, double max);
  std::optional<int> integer(const YAML::Node &node, std::string_view what, int min, int max);
  std::optional<bool> boolean(const YAML::Node &node, std::string_view what);
  std::optional<std::uint64_t> duration(const YAML::Node &node, std::string_view what, std::uint64_t min_ms);
  std::vector<std::string> strings(const YAML::Node &node, std::string_view what);
  std::optional<Mode> mode(const YAML::Node &node);
  void names(const YAML::Node &node, std::string_view context, bool services_too,
             std::vector<std::string> &out);

  void document(const YAML::Node &doc);
  void identity(Identity &identity, const Fields &spec);
  void service(Service &service, const Fields &spec);
  void jwt(JwtAuth &auth, const YAML::Node &node);
  void risk(RiskPolicy &policy, const Fields &spec);
  void signals(RiskPolicy &policy, const YAML::Node &node);
  void thresholds(RiskPolicy &policy, const YAML::Node &node);
  void lists(RiskPolicy &policy, const YAML::Node &node);
  void rule(RiskPolicy &policy, const YAML::Node &node, std::set<std::string> &seen);
  void fast_path(RiskPolicy &policy, const YAML::Node &node);
  std::vector<std::string> fast_path_side(const Fields &entry, const YAML::Node &item, std::string_view side);
  void check_references();

  std::string file_;
  std::vector<Diagnostic> diagnostics_;
  std::vector<Reference> references_;
  PolicySet set_;
  EVP_MD_CTX *digest_;
};

std::optional<Fields> Loader::fields(const YAML::Node &node, std::initializer_list<std::string_view> allowed,
                                     std::string_view what)
{
  if (!node.IsMap()) {
    error(node, fmt::format("{} must be a mapping", what));
    return std::nullopt;
  }
  Fields out;
  const std::vector<std::string_view> candidates(allowed);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key, fmt::format("{}: keys must be plain names", what));
      continue;
    }
    const std::string name = key.Scalar();
    if (std::find(candidates.begin(), candidates.end(), name) == candidates.end()) {
      const auto hint = risk::closest(name, candidates);
      error(key, fmt::format("unknown key '{}' in {}{}", name, what,
                             hint ? fmt::format(" (did you mean '{}'?)", *hint) : std::string{}));
      continue;
    }
    if (out.get(name)) {
      error(key, fmt::format("duplicate key '{}' in {}", name, what));
      continue;
    }
    out.entries.emplace_back(name, it->second);
  }
  return out;
}

std::optional<std::string> Loader::string(const YAML::Node &node, std::string_view what)
{
  if (!node.IsScalar()) {
    error(node, fmt::format("{} must be a string", what));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<double> Loader::number(const YAML::Node &node, std::string_view what, double min, double max)
{
  if (!node.IsScalar()) {
    error(node, fmt::format("{} must be a number", what));
    return std::nullopt;
  }
  const auto value = risk::parse_number(node.Scalar());
  if (!value) {
    error(node, fmt::format("{} must be a number, not '{}'", what, node.Scalar()));
    return std::nullopt;
  }
  if (*value < min || *value > max) {
    error(node, fmt::format("{} must be between {} and {}, not {}", what, min, max, node.Scalar()));
    return std::nullopt;
  }
  return value;
}

std::optional<int> Loader::integer(const YAML::Node &node, std::string_view what, int min, int max)
{
  const auto value = number(node, what, min, max);
  if (!value)
    return std::nullopt;
  if (*value != static_cast<double>(static_cast<int>(*value))) {
    error(node, fmt::format("{} must be a whole number, not {}", what, node.Scalar()));
    return std::nullopt;
  }
  return static_cast<int>(*value);
}

std::optional<bool> Loader::boolean(const YAML::Node &node, std::string_view what)
{
  if (node.IsScalar() && (node.Scalar() == "true" || node.Scalar() == "false"))
    return node.Scalar() == "true";
  error(node, fmt::format("{} must be true or false", what));
  return std::nullopt;
}

std::optional<std::uint64_t> Loader::duration(const YAML::Node &node, std::string_view what,
                                              std::uint64_t min_ms)
{
  if (!node.IsScalar()) {
    error(node, fmt::format("{} must be a duration such as 10m", what));
    return std::nullopt;
  }
  const auto ms = parse_duration_ms(node.Scalar());
  if (!ms) {
    error(node, fmt::format("{}: {}", what, ms.error()));
    return std::nullopt;
  }
  if (*ms < min_ms) {
    error(node, fmt::format("{} must be at least {}", what, format_duration_ms(min_ms)));
    return std::nullopt;
  }
  return *ms;
}

std::vector<std::string> Loader::strings(const YAML::Node &node, std::string_view what)
{
  std::vector<std::string> out;
  if (!node.IsSequence()) {
    error(node, fmt::format("{} must be a list", what));
    return out;
  }
  for (const auto &item : node)
    if (auto value = string(item, fmt::format("each entry of {}", what)))
      out.push_back(std::move(*value));
  return out;
}

std::optional<Mode> Loader::mode(const YAML::Node &node)
{
  if (node.IsScalar() && node.Scalar() == "enforce")
    return Mode::enforce;
  if (node.IsScalar() && node.Scalar() == "observe")
    return Mode::observe;
  error(node, "mode must be enforce or observe");
  return std::nullopt;
}

void Loader::names(const YAML::Node &node, std::string_view context, bool services_too,
                   std::vector<std::string> &out)
{
  if (!node.IsSequence()) {
    error(node, fmt::format("{} must be a list of names", context));
    return;
  }
  for (const auto &item : node) {
    auto value = string(item, fmt::format("each entry of {}", context));
    if (!value)
      continue;
    if (*value != "*")
      references_.push_back({*value, at(item), std::string(context), services_too});
    out.push_back(std::move(*value));
  }
}

void Loader::add_text(std::string_view text, const std::string &file)
{
  file_ = file;
  set_.files.push_back(file);
  EVP_DigestUpdate(digest_, text.data(), text.size());
  EVP_DigestUpdate(digest_, "\0", 1);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception &e) {
    if (e.mark.is_null())
      error_at({file_, 0, 0}, fmt::format("YAML: {}", e.msg));
    else
      error_at({file_, e.mark.line + 1, e.mark.column + 1}, fmt::format("YAML syntax: {}", e.msg));
    return;
  }
  for (const auto &doc : documents)
    if (!doc.IsNull())
      document(doc);
}

void Loader::document(const YAML::Node &doc)
{
  const auto top = fields(doc, {"apiVersion", "kind", "metadata", "spec"}, "a policy document");
  if (!top)
    return;
  const auto api = top->get("apiVersion");
  const auto kind_node = top->get("kind");
  const auto metadata = top->get("metadata");
  const auto spec_node = top->get("spec");
  bool complete = true;
  for (const auto &[key, node] : {std::pair{"apiVersion", api}, std::pair{"kind", kind_node},
                                  std::pair{"metadata", metadata}, std::pair{"spec", spec_node}})
    if (!node) {
      error(doc, fmt::format("document has no {}", key));
      complete = false;
    }
  if (!complete)
    return;
  if (!api->IsScalar() || api->Scalar() != kApiVersion)
    error(*api, fmt::format("apiVersion must be {}", kApiVersion));
  std::string name;
  if (const auto meta = fields(*metadata, {"name", "labels", "annotations"}, "metadata")) {
    if (const auto name_node = meta->get("name")) {
      name = string(*name_node, "metadata.name").value_or("");
      if (!name.empty() && !valid_name(name))
        error(*name_node,
              fmt::format("metadata.name '{}' must be lowercase letters, digits, '-' and '.'", name));
    } else {
      error(*metadata, "metadata has no name");
    }
  }
  const auto kind = string(*kind_node, "kind");
  if (!kind)
    return;
  const SourceLocation where = at(doc);
  if (*kind == "Identity") {
    const auto spec = fields(*spec_node, {"spiffe", "selectors"}, "Identity spec");
    for (const auto &other : set_.identities)
      if (other.name == name && !name.empty())
        error(*metadata,
              fmt::format("duplicate Identity '{}' (first defined at {})", name, where_string(other.where)));
    if (name == kWorld)
      error(*metadata, "'world' is the built-in identity of unknown peers; choose another name");
    Identity identity{name, {}, {}, where};
    if (spec)
      this->identity(identity, *spec);
    set_.identities.push_back(std::move(identity));
  } else if (*kind == "Service") {
    const auto spec =
        fields(*spec_node, {"listen", "transparent", "upstream", "auth", "bindings"}, "Service spec");
    for (const auto &other : set_.services)
      if (other.name == name && !name.empty())
        error(*metadata,
              fmt::format("duplicate Service '{}' (first defined at {})", name, where_string(other.where)));
    Service service;
    service.name = name;
    service.where = where;
    if (spec)
      this->service(service, *spec);
    else
      return;
    if (service.listen.empty() && !service.transparent_port)
      error(*spec_node, "Service needs listen (gateway) or transparent: {port}");
    if (!service.listen.empty() && service.transparent_port)
      error(*spec_node, "Service has both listen and transparent; choose one");
    if (service.upstream.empty() && !service.transparent_port)
      error(*spec_node, "Service has no upstream");
    set_.services.push_back(std::move(service));
  } else if (*kind == "RiskPolicy") {
    const auto spec =
        fields(*spec_node, {"mode", "signals", "thresholds", "limit", "block", "lists", "rules", "fastPath"},
               "RiskPolicy spec");
    if (!set_.risk_policies.empty())
      error(doc,
            fmt::format("only one RiskPolicy per policy set (the first is '{}' at {})",
                        set_.risk_policies.front().name, where_string(set_.risk_policies.front().where)));
    RiskPolicy policy;
    policy.name = name;
    policy.where = where;
    if (spec)
      risk(policy, *spec);
    set_.risk_policies.push_back(std::move(policy));
  } else {
    error(*kind_node, fmt::format("unknown kind '{}' (Identity, Service or RiskPolicy)", *kind));
  }
}

void Loader::identity(Identity &identity, const Fields &spec)
{
  if (const auto spiffe = spec.get("spiffe")) {
    identity.spiffe = string(*spiffe, "spiffe").value_or("");
    if (!identity.spiffe.empty() && identity.spiffe.rfind("spiffe://", 0) != 0)
      error(*spiffe, fmt::format("spiffe '{}' must start with spiffe://", identity.spiffe));
  }
  const auto selectors = spec.get("selectors");
  if (!selectors)
    return;
  if (!selectors->IsSequence()) {
    error(*selectors, "selectors must be a list");
    return;
  }
  for (const auto &item : *selectors) {
    const auto selector = fields(item, {"cgroup", "kubernetes", "cidr"}, "a selector");
    if (!selector)
      continue;
    if (selector->entries.size() != 1) {
      error(item, "a selector has exactly one of cgroup, kubernetes, cidr");
      continue;
    }
    IdentitySelector out;
    if (const auto cgroup = selector->get("cgroup")) {
      out.cgroup = string(*cgroup, "cgroup").value_or("");
      if (out.cgroup.empty() || out.cgroup.front() != '/')
        error(*cgroup, "cgroup must be a path (glob) starting with '/'");
    } else if (const auto k8s = selector->get("kubernetes")) {
      const auto kf = fields(*k8s, {"namespace", "serviceAccount"}, "kubernetes selector");
      if (!kf)
        continue;
      if (const auto ns = kf->get("namespace"))
        out.k8s_namespace = string(*ns, "namespace").value_or("");
      if (const auto sa = kf->get("serviceAccount"))
        out.k8s_service_account = string(*sa, "serviceAccount").value_or("");
      if (out.k8s_namespace.empty())
        error(*k8s, "kubernetes selector needs a namespace");
    } else if (const auto cidr = selector->get("cidr")) {
      out.cidr = string(*cidr, "cidr").value_or("");
      if (const auto parsed = net::parse_prefix(out.cidr); !parsed)
        error(*cidr, parsed.error());
    }
    identity.selectors.push_back(std::move(out));
  }
}

void Loader::service(Service &service, const Fields &spec)
{
  if (const auto listen = spec.get("listen")) {
    service.listen = string(*listen, "listen").value_or("");
    if (const auto problem = check_endpoint(service.listen))
      error(*listen, fmt::format("listen {}", *problem));
  }
  if (const auto transparent = spec.get("transparent"))
    if (const auto tf = fields(*transparent, {"port"}, "transparent")) {
      if (const auto port = tf->get("port")) {
        if (const auto value = integer(*port, "transparent.port", 1, 65535))
          service.transparent_port = static_cast<std::uint16_t>(*value);
      } else {
        error(*transparent, "transparent needs a port");
      }
    }
  if (const auto upstream = spec.get("upstream")) {
    service.upstream = string(*upstream, "upstream").value_or("");
    if (const auto problem = check_endpoint(service.upstream))
      error(*upstream, fmt::format("upstream {}", *problem));
  }
  if (const auto auth = spec.get("auth"))
    if (const auto af = fields(*auth, {"jwt"}, "auth"))
      if (const auto jwt_node = af->get("jwt")) {
        JwtAuth auth_out;
        jwt(auth_out, *jwt_node);
        service.jwt = std::move(auth_out);
      }
  if (const auto bindings = spec.get("bindings")) {
    if (!bindings->IsSequence()) {
      error(*bindings, "bindings must be a list");
      return;
    }
    for (const auto &item : *bindings) {
      const auto bf = fields(item, {"subject", "identities"}, "a binding");
      if (!bf)
        continue;
      Binding binding;
      if (const auto subject = bf->get("subject"))
        binding.subject = string(*subject, "subject").value_or("");
      else
        error(item, "a binding needs a subject");
      if (const auto identities = bf->get("identities"))
        names(*identities, fmt::format("binding '{}' identities", binding.subject), false,
              binding.identities);
      else
        error(item, "a binding needs identities");
      service.bindings.push_back(std::move(binding));
    }
  }
}

void Loader::jwt(JwtAuth &auth, const YAML::Node &node)
{
  const auto jf = fields(node,
                         {"required", "issuers", "audiences", "jwks", "jwksUrl", "algorithms", "allowHS256",
                          "leeway", "revocations"},
                         "jwt");
  if (!jf)
    return;
  if (const auto v = jf->get("required"))
    auth.required = boolean(*v, "required").value_or(false);
  if (const auto v = jf->get("issuers"))
    auth.issuers = strings(*v, "issuers");
  if (const auto v = jf->get("audiences"))
    auth.audiences = strings(*v, "audiences");
  if (const auto v = jf->get("jwks"))
    auth.jwks_file = string(*v, "jwks").value_or("");
  if (const auto v = jf->get("jwksUrl")) {
    auth.jwks_url = string(*v, "jwksUrl").value_or("");
    // The agent fetches keys over TLS only: keys taken from plain http could be swapped in transit.
    if (auth.jwks_url.rfind("https://", 0) != 0)
      error(*v, "jwksUrl must be an https:// URL (signing keys are not fetched over plain http)");
  }
  if (const auto v = jf->get("allowHS256"))
    auth.allow_hs256 = boolean(*v, "allowHS256").value_or(false);
  if (const auto v = jf->get("algorithms")) {
    static constexpr std::string_view kKnown[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                                  "ES256", "ES384", "ES512", "EdDSA", "HS256"};
    auth.algorithms = strings(*v, "algorithms");
    std::size_t i = 0;
    for (const auto &item : *v) {
      if (i >= auth.algorithms.size())
        break;
      const auto &alg = auth.algorithms[i++];
      if (std::find(std::begin(kKnown), std::end(kKnown), alg) == std::end(kKnown))
        error(item,
              fmt::format("unknown algorithm '{}' (RS256..RS512, PS256..PS512, ES256..ES512, EdDSA, HS256)",
                          alg));
      else if (alg == "HS256" && !auth.allow_hs256)
        error(item, "HS256 needs allowHS256: true (a shared secret can be used to forge tokens)");
    }
  }
  if (const auto v = jf->get("leeway"))
    auth.leeway_s = static_cast<std::uint32_t>(duration(*v, "leeway", 0).value_or(60000) / 1000);
  if (const auto v = jf->get("revocations"))
    auth.revocation_file = string(*v, "revocations").value_or("");
  if (auth.jwks_file.empty() && auth.jwks_url.empty())
    error(node, "jwt needs jwks (a file) or jwksUrl");
  if (auth.issuers.empty())
    error(node, "jwt needs at least one issuer");
}

void Loader::risk(RiskPolicy &policy, const Fields &spec)
{
  if (const auto v = spec.get("mode"))
    policy.mode = mode(*v).value_or(Mode::enforce);
  if (const auto v = spec.get("signals"))
    signals(policy, *v);
  if (const auto v = spec.get("thresholds"))
    thresholds(policy, *v);
  if (const auto v = spec.get("limit"))
    if (const auto lf = fields(*v, {"ratePerSecond", "burst", "retryAfter"}, "limit")) {
      if (const auto x = lf->get("ratePerSecond"))
        policy.limit_rate_per_s = number(*x, "ratePerSecond", 0.001, 1e6).value_or(policy.limit_rate_per_s);
      if (const auto x = lf->get("burst"))
        policy.limit_burst = number(*x, "burst", 1, 1e6).value_or(policy.limit_burst);
      if (const auto x = lf->get("retryAfter"))
        policy.retry_after_s =
            static_cast<std::uint32_t>(duration(*x, "retryAfter", 1000).value_or(5000) / 1000);
    }
  if (const auto v = spec.get("block"))
    if (const auto bf = fields(*v, {"scope", "ttl", "escalate"}, "block")) {
      if (const auto x = bf->get("scope")) {
        const std::string scope = x->IsScalar() ? x->Scalar() : "";
        if (scope == "ip")
          policy.block_scope = BlockScope::ip;
        else if (scope == "identity")
          policy.block_scope = BlockScope::identity;
        else if (scope == "pair")
          policy.block_scope = BlockScope::pair;
        else if (scope == "connection")
          policy.block_scope = BlockScope::connection;
        else
          error(*x, "block.scope must be ip, identity, pair or connection");
      }
      if (const auto x = bf->get("ttl"))
        policy.block_ttl_ms = duration(*x, "block.ttl", 1000).value_or(policy.block_ttl_ms);
      if (const auto x = bf->get("escalate"))
        if (const auto ef = fields(*x, {"factor", "max"}, "block.escalate")) {
          if (const auto f = ef->get("factor"))
            policy.block_escalate_factor = number(*f, "escalate.factor", 1, 100).value_or(2);
          if (const auto m = ef->get("max"))
            policy.block_max_ttl_ms = duration(*m, "escalate.max", 1000).value_or(policy.block_max_ttl_ms);
        }
      if (policy.block_max_ttl_ms < policy.block_ttl_ms)
        error(*v, fmt::format("block.escalate.max ({}) is shorter than block.ttl ({})",
                              format_duration_ms(policy.block_max_ttl_ms),
                              format_duration_ms(policy.block_ttl_ms)));
    }
  if (const auto v = spec.get("lists"))
    lists(policy, *v);
  if (const auto v = spec.get("rules")) {
    if (!v->IsSequence()) {
      error(*v, "rules must be a list");
    } else {
      std::set<std::string> seen;
      for (const auto &item : *v) rule(policy, item, seen);
    }
  }
  if (const auto v = spec.get("fastPath"))
    fast_path(policy, *v);
}

void Loader::signals(RiskPolicy &policy, const YAML::Node &node)
{
  std::vector<std::string_view> signal_names;
  for (const auto &spec : risk::signal_specs()) signal_names.push_back(spec.name);
  if (!node.IsMap()) {
    error(node, "signals must be a mapping of signal name to settings");
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
    const auto *spec = risk::find_signal(name);
    if (!spec) {
      const auto hint = risk::closest(name, signal_names);
      error(it->first, fmt::format("unknown signal '{}'{}", name,
                                   hint ? fmt::format(" (did you mean '{}'?)", *hint)
                                        : fmt::format(" (signals: {})", fmt::join(signal_names, ", "))));
      continue;
    }
    if (policy.signals.count(name)) {
      error(it->first, fmt::format("signal '{}' is configured twice", name));
      continue;
    }
    Signal signal;
    signal.weight = spec->default_weight;
    std::vector<std::string_view> allowed = {"enabled", "weight"};
    for (const auto &param : spec->params) allowed.push_back(param.key);
    const YAML::Node settings = it->second;
    if (!settings.IsMap()) {
      error(settings, fmt::format("signal '{}' must be a mapping ({{weight: N, ...}})", name));
      continue;
    }
    for (auto kv = settings.begin(); kv != settings.end(); ++kv) {
      const std::string key = kv->first.IsScalar() ? kv->first.Scalar() : "";
      const YAML::Node value = kv->second;
      if (key == "enabled") {
        signal.enabled = boolean(value, "enabled").value_or(true);
      } else if (key == "weight") {
        signal.weight = integer(value, fmt::format("{}.weight", name), 0, 100).value_or(signal.weight);
      } else if (const auto *param = risk::find_param(*spec, key)) {
        if (!value.IsScalar()) {
          error(value, fmt::format("{}.{} must be a single value", name, key));
        } else if (const auto problem = risk::check_param(*param, value.Scalar())) {
          error(value, fmt::format("{}.{}: {}", name, key, *problem));
        } else {
          signal.params[key] = value.Scalar();
        }
      } else {
        const auto hint = risk::closest(key, allowed);
        error(kv->first, fmt::format("unknown key '{}' in signal '{}'{}", key, name,
                                     hint ? fmt::format(" (did you mean '{}'?)", *hint)
                                          : fmt::format(" (keys: {})", fmt::join(allowed, ", "))));
      }
    }
    policy.signals[name] = std::move(signal);
  }
}

void Loader::thresholds(RiskPolicy &policy, const YAML::Node &node)
{
  const auto tf = fields(node, {"challenge", "limit", "block"}, "thresholds");
  if (!tf)
    return;
  bool ok = true;
  auto read = [&](const char *key, int &out) {
    if (const auto v = tf->get(key)) {
      if (const auto value = integer(*v, fmt::format("thresholds.{}", key), 1, 100))
        out = *value;
      else
        ok = false;
    }
  };
  read("challenge", policy.challenge_at);
  read("limit", policy.limit_at);
  read("block", policy.block_at);
  if (ok && !(policy.challenge_at < policy.limit_at && policy.limit_at < policy.block_at))
    error(node, fmt::format("thresholds must rise: challenge ({}) < limit ({}) < block ({})",
                            policy.challenge_at, policy.limit_at, policy.block_at));
}

void Loader::lists(RiskPolicy &policy, const YAML::Node &node)
{
  const auto lf = fields(node, {"deny", "watch"}, "lists");
  if (!lf)
    return;
  auto one = [&](const char *which, std::vector<std::string> &identities, std::vector<std::string> &cidrs) {
    const auto list = lf->get(which);
    if (!list)
      return;
    const auto f = fields(*list, {"identities", "cidrs"}, fmt::format("lists.{}", which));
    if (!f)
      return;
    if (const auto ids = f->get("identities"))
      names(*ids, fmt::format("lists.{}.identities", which), false, identities);
    if (const auto c = f->get("cidrs")) {
      cidrs = strings(*c, fmt::format("lists.{}.cidrs", which));
      if (c->IsSequence())
        for (const auto &item : *c)
          if (item.IsScalar())
            if (const auto parsed = net::parse_prefix(item.Scalar()); !parsed)
              error(item, parsed.error());
    }
  };
  one("deny", policy.deny_identities, policy.deny_cidrs);
  one("watch", policy.watch_identities, policy.watch_cidrs);
}

void Loader::rule(RiskPolicy &policy, const YAML::Node &node, std::set<std::string> &seen)
{
  const auto rf = fields(node, {"name", "allow", "deny", "mode"}, "a rule");
  if (!rf)
    return;
  Rule rule;
  rule.where = at(node);
  if (const auto name = rf->get("name")) {
    rule.name = string(*name, "rule name").value_or("");
    if (!rule.name.empty() && !seen.insert(rule.name).second)
      error(*name, fmt::format("duplicate rule name '{}'", rule.name));
  } else {
    error(node, "a rule needs a name (it appears in every decision it makes)");
  }
  const auto allow = rf->get("allow");
  const auto deny = rf->get("deny");
  if (allow.has_value() == deny.has_value()) {
    error(node, fmt::format("rule '{}' needs exactly one of allow or deny", rule.name));
    return;
  }
  rule.effect = allow ? Rule::Effect::allow : Rule::Effect::deny;
  const YAML::Node &body = allow ? *allow : *deny;
  if (const auto m = rf->get("mode"))
    rule.mode = mode(*m);
  const auto bf = fields(body, {"from", "to", "routes"}, fmt::format("rule '{}'", rule.name));
  if (!bf)
    return;
  if (const auto from = bf->get("from"))
    names(*from, fmt::format("rule '{}' from", rule.name), false, rule.from);
  if (const auto to = bf->get("to"))
    names(*to, fmt::format("rule '{}' to", rule.name), true, rule.to);
  if (const auto routes = bf->get("routes")) {
    rule.routes = strings(*routes, fmt::format("rule '{}' routes", rule.name));
    std::size_t i = 0;
    for (const auto &item : *routes) {
      if (i >= rule.routes.size())
        break;
      if (const auto problem = risk::check_route_pattern(rule.routes[i++]))
        error(item, *problem);
    }
  }
  if (rule.from.empty() && rule.to.empty() && rule.routes.empty())
    error(body, fmt::format("rule '{}' matches every request; give it from, to or routes", rule.name));
  policy.rules.push_back(std::move(rule));
}

// fastPath: [{from: [names], to: [names]}], each entry every (from, to) combination. A pair may be
// declared once: a second declaration is more likely a mistake in one of the two than an intent.
void Loader::fast_path(RiskPolicy &policy, const YAML::Node &node)
{
  if (!node.IsSequence()) {
    error(node, "fastPath must be a list of {from, to} entries");
    return;
  }
  std::map<std::pair<std::string, std::string>, SourceLocation> declared;
  for (const auto &item : node) {
    const auto entry = fields(item, {"from", "to"}, "a fastPath entry");
    if (!entry)
      continue;
    const auto clients = fast_path_side(*entry, item, "from");
    const auto servers = fast_path_side(*entry, item, "to");
    for (const auto &client : clients)
      for (const auto &server : servers) {
        const auto [first, fresh] = declared.emplace(std::pair{client, server}, at(item));
        if (fresh)
          policy.fast_path.push_back({client, server, at(item)});
        else
          error(item, fmt::format("fastPath pair {} -> {} is already declared at {}", client, server,
                                  where_string(first->second)));
      }
  }
}

// One side of a fastPath entry: identity names, each once. Neither '*' nor 'world': trust is given
// pair by pair, and the fast path joins two local workloads, which an unknown peer is not.
std::vector<std::string> Loader::fast_path_side(const Fields &entry, const YAML::Node &item,
                                                std::string_view side)
{
  std::vector<std::string> out;
  const auto list = entry.get(side);
  if (!list) {
    error(item, fmt::format("a fastPath entry needs {} (a list of identity names)", side));
    return out;
  }
  const std::string context = fmt::format("fastPath {}", side);
  if (!list->IsSequence() || list->size() == 0) {
    error(*list, fmt::format("{} must be a non-empty list of identity names", context));
    return out;
  }
  for (const auto &name_node : *list) {
    const auto name = string(name_node, fmt::format("each entry of {}", context));
    if (!name)
      continue;
    if (*name == "*") {
      error(name_node,
            fmt::format("{}: '*' is not allowed; name each identity (trust is given pair by pair)", context));
    } else if (*name == kWorld) {
      error(name_node, fmt::format("{}: 'world' (unknown peers) cannot take the fast path, which joins two "
                                   "local workloads",
                                   context));
    } else if (std::find(out.begin(), out.end(), *name) != out.end()) {
      error(name_node, fmt::format("{}: duplicate identity '{}'", context, *name));
    } else {
      references_.push_back({*name, at(name_node), context, false});
      out.push_back(*name);
    }
  }
  return out;
}

void Loader::check_references()
{
  std::set<std::string> identities{std::string(kWorld)};
  std::vector<std::string_view> candidates{kWorld};
  for (const auto &identity : set_.identities) {
    identities.insert(identity.name);
    candidates.push_back(identity.name);
  }
  std::set<std::string> services;
  for (const auto &service : set_.services) services.insert(service.name);
  for (const auto &ref : references_) {
    if (identities.count(ref.name) || (ref.services_too && services.count(ref.name)))
      continue;
    const auto hint = risk::closest(ref.name, candidates);
    error_at(ref.where, fmt::format("{}: unknown {} '{}'{}", ref.context,
                                    ref.services_too ? "identity or service" : "identity", ref.name,
                                    hint ? fmt::format(" (did you mean '{}'?)", *hint)
                                         : std::string(" (define it with kind: Identity)")));
  }
}

LoadResult Loader::finish()
{
  check_references();
  if (!diagnostics_.empty())
    return {std::nullopt, std::move(diagnostics_)};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_DigestFinal_ex(digest_, hash, &length);
  std::string version;
  for (unsigned i = 0; i < 6 && i < length; ++i) version += fmt::format("{:02x}", hash[i]);
  set_.version = version;
  return {std::move(set_), {}};
}

std::optional<std::string> read_file(const std::string &path, std::string &error)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read: {}", errno_text());
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

LoadResult load_text(std::string_view text, const std::string &file)
{
  Loader loader;
  loader.add_text(text, file);
  return loader.finish();
}

LoadResult load_default()
{
  return load_text(embedded::default_yaml, "<embedded>/default.yaml");
}

LoadResult load_path(const std::string &path)
{
  Loader loader;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    loader.error_at({path, 0, 0}, fmt::format("cannot open: {}", errno_text()));
    return loader.finish();
  }
  std::vector<std::string> files;
  if (S_ISDIR(st.st_mode)) {
    if (DIR *dir = ::opendir(path.c_str())) {
      while (const dirent *entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        const bool yaml = name.size() > 5 && (name.ends_with(".yaml") || name.ends_with(".yml"));
        if (yaml && name.front() != '.')
          files.push_back(path + "/" + name);
      }
      ::closedir(dir);
    }
    std::sort(files.begin(), files.end());
    if (files.empty())
      loader.error_at({path, 0, 0}, "no policy files (*.yaml, *.yml) in this directory");
  } else {
    files.push_back(path);
  }
  for (const auto &file : files) {
    std::string error;
    if (const auto text = read_file(file, error))
      loader.add_text(*text, file);
    else
      loader.error_at({file, 0, 0}, error);
  }
  return loader.finish();
}

}  // namespace riskgate::policy
