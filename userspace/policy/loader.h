// The policy loader's state while it reads the files of one set: the reader (positions and every
// diagnostic), the set being built, names to resolve once every file is read (documents may come in
// any order), and the digest of the contents that becomes the set's version. Each document kind is
// read in its own file (identity_document.cpp, service_document.cpp, risk_policy_document.cpp);
// checks that span documents are in policy_validate.cpp.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include <riskgate/policy/policy.h>
#include <riskgate/policy/yaml_reader.h>

namespace riskgate::policy {

inline constexpr std::string_view kApiVersion = "riskgate.dev/v1";
// The built-in identity of every peer no selector matches.
inline constexpr std::string_view kWorld = "world";
inline constexpr std::string_view kWorldIsBuiltIn =
    "'world' is the built-in identity of unknown peers; choose another name";

// What every document has, checked by Loader::document: its node, metadata, name and spec.
struct Document {
  YAML::Node node;
  YAML::Node metadata;
  std::string name;
  YAML::Node spec;
};

// A name used somewhere that must be defined by some document of the set.
struct Reference {
  std::string name;
  SourceLocation where;
  std::string context;  // "rule 'x' from"
  bool services_too = false;
};

// policy_validate.cpp
std::string where_string(const SourceLocation &where);
// metadata.name: lowercase letters, digits, '-' and '.', alphanumeric at both ends.
bool valid_name(std::string_view name);
// "HOST:PORT", "[v6]:PORT" or ":PORT" (every address); the problem, or nullopt.
std::optional<std::string> check_endpoint(std::string_view text);
// Records every reference no Identity (or, where allowed, Service) of `set` defines.
void check_references(YamlReader &yaml, const PolicySet &set, const std::vector<Reference> &references);

// identity_document.cpp: an Identity's spec (spiffe, selectors), shared with the identity file.
void read_identity_spec(YamlReader &yaml, const Fields &spec, Identity &identity);

class Loader {
 public:
  Loader();

  void add_text(std::string_view text, const std::string &file);
  void add_file(const std::string &file);
  void error_at(const SourceLocation &where, std::string message)
  {
    yaml_.error_at(where, std::move(message));
  }
  LoadResult finish();

 private:
  void document(const YAML::Node &doc);
  std::string metadata_name(const YAML::Node &metadata);
  void names(const YAML::Node &node, std::string_view context, bool services_too,
             std::vector<std::string> &out);
  std::optional<Mode> mode(const YAML::Node &node);

  void identity(const Document &doc);
  void service(const Document &doc);
  void service_spec(Service &service, const Fields &spec);
  void service_identity(Service &service, const YAML::Node &node);
  void bindings(Service &service, const YAML::Node &node);
  void jwt(JwtAuth &auth, const YAML::Node &node);
  void risk_policy(const Document &doc);
  void risk(RiskPolicy &policy, const Fields &spec);
  void limit(RiskPolicy &policy, const YAML::Node &node);
  void block(RiskPolicy &policy, const YAML::Node &node);
  void signals(RiskPolicy &policy, const YAML::Node &node);
  void signal(RiskPolicy &policy, const std::string &name, const YAML::Node &settings);
  void thresholds(RiskPolicy &policy, const YAML::Node &node);
  void lists(RiskPolicy &policy, const YAML::Node &node);
  void list(const Fields &lists, const char *which, std::vector<std::string> &identities,
            std::vector<std::string> &cidrs);
  void rules(RiskPolicy &policy, const YAML::Node &node);
  void rule(RiskPolicy &policy, const YAML::Node &node, std::set<std::string> &seen);
  void fast_path(RiskPolicy &policy, const YAML::Node &node);
  std::vector<std::string> fast_path_side(const Fields &entry, const YAML::Node &item, std::string_view side);

  YamlReader yaml_;
  std::vector<Reference> references_;
  PolicySet set_;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> digest_{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
};

}  // namespace riskgate::policy
