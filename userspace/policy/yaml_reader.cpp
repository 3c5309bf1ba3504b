#include <riskgate/policy/yaml_reader.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <riskgate/common/duration.h>
#include <riskgate/common/errors.h>
#include <riskgate/policy/params.h>

namespace riskgate::policy {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b)
{
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string> closest(std::string_view word, std::span<const std::string_view> candidates)
{
  std::optional<std::string> best;
  std::size_t best_distance = 3;
  for (const auto candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

std::optional<YAML::Node> Fields::get(std::string_view key) const
{
  for (const auto &[name, value] : entries_)
    if (name == key)
      return value;
  return std::nullopt;
}

std::optional<std::string> YamlReader::read_text(const std::string &path)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error_at({path, 0, 0}, fmt::format("cannot read: {}", errno_text()));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<YAML::Node> YamlReader::documents(std::string_view text, const std::string &file)
{
  file_ = file;
  std::vector<YAML::Node> all;
  try {
    all = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception &e) {
    if (e.mark.is_null())
      error_at({file_, 0, 0}, fmt::format("YAML: {}", e.msg));
    else
      error_at({file_, e.mark.line + 1, e.mark.column + 1}, fmt::format("YAML syntax: {}", e.msg));
    return {};
  }
  std::erase_if(all, [](const YAML::Node &doc) { return doc.IsNull(); });
  return all;
}

SourceLocation YamlReader::at(const YAML::Node &node) const
{
  const auto mark = node.Mark();
  return {file_, mark.line + 1, mark.column + 1};
}

void YamlReader::error_at(SourceLocation where, std::string message)
{
  diagnostics_.push_back({std::move(where), std::move(message)});
}

std::optional<Fields> YamlReader::fields(const YAML::Node &node, std::span<const std::string_view> allowed,
                                         std::string_view what, std::string_view key)
{
  if (!node.IsMap()) {
    error(node, fmt::format("{} must be a mapping", what));
    return std::nullopt;
  }
  Fields out;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node name_node = it->first;
    if (!name_node.IsScalar()) {
      error(name_node, fmt::format("{}: keys must be plain names", what));
      continue;
    }
    const std::string name = name_node.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      const auto hint = closest(name, allowed);
      error(name_node, fmt::format("unknown {} '{}' in {} {}", key, name, what,
                                   hint ? fmt::format("(did you mean '{}'?)", *hint)
                                        : fmt::format("({}s: {})", key, fmt::join(allowed, ", "))));
      continue;
    }
    if (out.get(name)) {
      error(name_node, fmt::format("duplicate {} '{}' in {}", key, name, what));
      continue;
    }
    out.entries_.emplace_back(name, it->second);
  }
  return out;
}

std::optional<std::string> YamlReader::string(const YAML::Node &node, std::string_view what)
{
  if (!node.IsScalar()) {
    error(node, fmt::format("{} must be a string", what));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<double> YamlReader::number(const YAML::Node &node, std::string_view what, double min,
                                         double max)
{
  const auto value = node.IsScalar() ? parse_number(node.Scalar()) : std::nullopt;
  if (!value || *value < min || *value > max) {
    error(node, fmt::format("{} must be a number from {} to {}{}", what, min, max,
                            node.IsScalar() ? fmt::format(", not '{}'", node.Scalar()) : ""));
    return std::nullopt;
  }
  return value;
}

std::optional<int> YamlReader::integer(const YAML::Node &node, std::string_view what, int min, int max)
{
  const auto value = node.IsScalar() ? parse_number(node.Scalar()) : std::nullopt;
  if (!value || *value < min || *value > max || *value != static_cast<double>(static_cast<int>(*value))) {
    error(node, fmt::format("{} must be a whole number from {} to {}{}", what, min, max,
                            node.IsScalar() ? fmt::format(", not '{}'", node.Scalar()) : ""));
    return std::nullopt;
  }
  return static_cast<int>(*value);
}

std::optional<bool> YamlReader::boolean(const YAML::Node &node, std::string_view what)
{
  if (node.IsScalar() && (node.Scalar() == "true" || node.Scalar() == "false"))
    return node.Scalar() == "true";
  error(node, fmt::format("{} must be true or false", what));
  return std::nullopt;
}

std::optional<std::uint64_t> YamlReader::duration(const YAML::Node &node, std::string_view what,
                                                  std::uint64_t min_ms, std::uint64_t max_ms)
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
  if (*ms < min_ms || *ms > max_ms) {
    error(node, *ms < min_ms ? fmt::format("{} must be at least {}", what, format_duration_ms(min_ms))
                             : fmt::format("{} must be at most {}", what, format_duration_ms(max_ms)));
    return std::nullopt;
  }
  return *ms;
}

bool YamlReader::list(const YAML::Node &node, std::string_view what, std::string_view items)
{
  if (node.IsSequence())
    return true;
  error(node, fmt::format("{} must be a list{}{}", what, items.empty() ? "" : " ", items));
  return false;
}

std::vector<std::string> YamlReader::strings(const YAML::Node &node, std::string_view what)
{
  std::vector<std::string> out;
  if (!list(node, what))
    return out;
  for (const auto &item : node)
    if (auto value = string(item, fmt::format("each entry of {}", what)))
      out.push_back(std::move(*value));
  return out;
}

}  // namespace riskgate::policy
