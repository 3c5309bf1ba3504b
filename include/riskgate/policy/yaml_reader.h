// The one YAML reader of riskgate's files: policy documents, the agent settings file and the static
// identity file. Every problem is recorded with its file:line:column and reading goes on, so a file
// shows all its errors at once; mappings refuse unknown keys (suggesting the nearest allowed one) and
// duplicate keys, which yaml-cpp itself accepts silently; values are type- and range-checked.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <riskgate/policy/policy.h>

namespace riskgate::policy {

// Closest candidate within edit distance 2, for "unknown key 'wieght' (did you mean 'weight'?)".
std::optional<std::string> closest(std::string_view word, std::span<const std::string_view> candidates);

// The entries of one mapping, each key allowed at that place and present once, in file order.
class Fields {
 public:
  using Entry = std::pair<std::string, YAML::Node>;
  std::optional<YAML::Node> get(std::string_view key) const;
  std::size_t size() const { return entries_.size(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  friend class YamlReader;
  std::vector<Entry> entries_;
};

class YamlReader {
 public:
  // The file's text; a file that cannot be read is recorded as an error at `path`.
  std::optional<std::string> read_text(const std::string &path);
  // Every non-empty document of `text`, whose nodes are then located in `file`. A syntax error is
  // recorded and no document returned: yaml-cpp stops at the first.
  std::vector<YAML::Node> documents(std::string_view text, const std::string &file);

  SourceLocation at(const YAML::Node &node) const;
  void error(const YAML::Node &node, std::string message) { error_at(at(node), std::move(message)); }
  void error_at(SourceLocation where, std::string message);

  // `node` as a mapping whose keys are among `allowed`; `what` names it in errors ("the jwt"), and
  // `key` names its keys ("unknown signal 'x' in signals"). Unknown and repeated keys are recorded
  // and left out; nullopt when `node` is no mapping.
  std::optional<Fields> fields(const YAML::Node &node, std::span<const std::string_view> allowed,
                               std::string_view what, std::string_view key = "key");
  std::optional<Fields> fields(const YAML::Node &node, std::initializer_list<std::string_view> allowed,
                               std::string_view what)
  {
    return fields(node, std::span(allowed.begin(), allowed.size()), what);
  }

  std::optional<std::string> string(const YAML::Node &node, std::string_view what);
  std::optional<double> number(const YAML::Node &node, std::string_view what, double min, double max);
  std::optional<int> integer(const YAML::Node &node, std::string_view what, int min, int max);
  std::optional<bool> boolean(const YAML::Node &node, std::string_view what);
  // Milliseconds, in the syntax of riskgate/common/duration.h.
  std::optional<std::uint64_t> duration(const YAML::Node &node, std::string_view what, std::uint64_t min_ms,
                                        std::uint64_t max_ms = std::numeric_limits<std::uint64_t>::max());
  // Whether `node` is a sequence; `items` describes its entries in the error ("of {from, to} entries").
  bool list(const YAML::Node &node, std::string_view what, std::string_view items = "");
  // A sequence of strings; entries that are not strings are recorded and left out.
  std::vector<std::string> strings(const YAML::Node &node, std::string_view what);

  bool ok() const { return diagnostics_.empty(); }
  const std::vector<Diagnostic> &diagnostics() const { return diagnostics_; }
  std::vector<Diagnostic> take_diagnostics() { return std::move(diagnostics_); }

 private:
  std::string file_;
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace riskgate::policy
