// Policy documents -> policy::PolicySet, validated. Every problem is collected with its file:line:column
// and reported together; a set with any error is never returned, so a half-valid policy can not be
// installed. Cross-document references (identities named by rules, bindings and lists) are checked
// once every file is read, so documents may come in any order.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

#include <riskgate/common/errors.h>
#include <riskgate/policy/embedded.h>

#include "loader.h"

namespace riskgate::policy {

std::string to_string(const Diagnostic &diagnostic)
{
  if (diagnostic.where.line == 0)
    return fmt::format("{}: {}", diagnostic.where.file, diagnostic.message);
  return fmt::format("{}:{}:{}: {}", diagnostic.where.file, diagnostic.where.line, diagnostic.where.column,
                     diagnostic.message);
}

std::string to_string(const std::vector<Diagnostic> &diagnostics)
{
  std::string out;
  for (const auto &diagnostic : diagnostics) {
    if (!out.empty())
      out += '\n';
    out += to_string(diagnostic);
  }
  return out;
}

Loader::Loader()
{
  EVP_DigestInit_ex(digest_.get(), EVP_sha256(), nullptr);
}

void Loader::add_text(std::string_view text, const std::string &file)
{
  set_.files.push_back(file);
  EVP_DigestUpdate(digest_.get(), text.data(), text.size());
  EVP_DigestUpdate(digest_.get(), "\0", 1);
  for (const auto &doc : yaml_.documents(text, file)) document(doc);
}

void Loader::add_file(const std::string &file)
{
  if (const auto text = yaml_.read_text(file))
    add_text(*text, file);
}

void Loader::document(const YAML::Node &doc)
{
  const auto top = yaml_.fields(doc, {"apiVersion", "kind", "metadata", "spec"}, "a policy document");
  if (!top)
    return;
  const auto api = top->get("apiVersion");
  const auto kind_node = top->get("kind");
  const auto metadata = top->get("metadata");
  const auto spec = top->get("spec");
  bool complete = true;
  for (const auto &[key, node] : {std::pair{"apiVersion", api}, std::pair{"kind", kind_node},
                                  std::pair{"metadata", metadata}, std::pair{"spec", spec}})
    if (!node) {
      yaml_.error(doc, fmt::format("document has no {}", key));
      complete = false;
    }
  if (!complete)
    return;
  if (!api->IsScalar() || api->Scalar() != kApiVersion)
    yaml_.error(*api, fmt::format("apiVersion must be {}", kApiVersion));
  const Document document{doc, *metadata, metadata_name(*metadata), *spec};
  const auto kind = yaml_.string(*kind_node, "kind");
  if (!kind)
    return;
  if (*kind == "Identity")
    identity(document);
  else if (*kind == "Service")
    service(document);
  else if (*kind == "RiskPolicy")
    risk_policy(document);
  else
    yaml_.error(*kind_node, fmt::format("unknown kind '{}' (Identity, Service or RiskPolicy)", *kind));
}

std::string Loader::metadata_name(const YAML::Node &metadata)
{
  const auto meta = yaml_.fields(metadata, {"name", "labels", "annotations"}, "metadata");
  if (!meta)
    return "";
  const auto name_node = meta->get("name");
  if (!name_node) {
    yaml_.error(metadata, "metadata has no name");
    return "";
  }
  const std::string name = yaml_.string(*name_node, "metadata.name").value_or("");
  if (!name.empty() && !valid_name(name))
    yaml_.error(*name_node,
                fmt::format("metadata.name '{}' must be lowercase letters, digits, '-' and '.'", name));
  return name;
}

// A list of identity (or, with services_too, service) names, each resolved once the set is read.
void Loader::names(const YAML::Node &node, std::string_view context, bool services_too,
                   std::vector<std::string> &out)
{
  if (!yaml_.list(node, context, "of names"))
    return;
  for (const auto &item : node) {
    auto value = yaml_.string(item, fmt::format("each entry of {}", context));
    if (!value)
      continue;
    if (*value != "*")
      references_.push_back({*value, yaml_.at(item), std::string(context), services_too});
    out.push_back(std::move(*value));
  }
}

std::optional<Mode> Loader::mode(const YAML::Node &node)
{
  if (node.IsScalar() && node.Scalar() == "enforce")
    return Mode::enforce;
  if (node.IsScalar() && node.Scalar() == "observe")
    return Mode::observe;
  yaml_.error(node, "mode must be enforce or observe");
  return std::nullopt;
}

LoadResult Loader::finish()
{
  check_references(yaml_, set_, references_);
  if (!yaml_.ok())
    return {std::nullopt, yaml_.take_diagnostics()};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_DigestFinal_ex(digest_.get(), hash, &length);
  std::string version;
  for (unsigned i = 0; i < 6 && i < length; ++i) version += fmt::format("{:02x}", hash[i]);
  set_.version = version;
  return {std::move(set_), {}};
}

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

namespace {

// Every *.yaml / *.yml in `dir` but hidden ones, sorted by name: the load order, and so the version.
std::vector<std::string> policy_files(const std::string &dir)
{
  std::vector<std::string> files;
  if (DIR *handle = ::opendir(dir.c_str())) {
    while (const dirent *entry = ::readdir(handle)) {
      const std::string name = entry->d_name;
      const bool yaml = name.size() > 5 && (name.ends_with(".yaml") || name.ends_with(".yml"));
      if (yaml && name.front() != '.')
        files.push_back(dir + "/" + name);
    }
    ::closedir(handle);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

LoadResult load_path(const std::string &path)
{
  Loader loader;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    loader.error_at({path, 0, 0}, fmt::format("cannot open: {}", errno_text()));
    return loader.finish();
  }
  if (!S_ISDIR(st.st_mode)) {
    loader.add_file(path);
    return loader.finish();
  }
  const auto files = policy_files(path);
  if (files.empty())
    loader.error_at({path, 0, 0}, "no policy files (*.yaml, *.yml) in this directory");
  for (const auto &file : files) loader.add_file(file);
  return loader.finish();
}

}  // namespace riskgate::policy
