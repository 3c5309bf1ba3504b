// Checks on values and on the set as a whole: names, endpoints, and references between documents,
// which can only be resolved once every file of the set is read.
#include <cctype>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "loader.h"

namespace riskgate::policy {

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

void check_references(YamlReader &yaml, const PolicySet &set, const std::vector<Reference> &references)
{
  std::set<std::string> identities{std::string(kWorld)};
  std::vector<std::string_view> candidates{kWorld};
  for (const auto &identity : set.identities) {
    identities.insert(identity.name);
    candidates.push_back(identity.name);
  }
  std::set<std::string> services;
  for (const auto &service : set.services) services.insert(service.name);
  for (const auto &ref : references) {
    if (identities.count(ref.name) || (ref.services_too && services.count(ref.name)))
      continue;
    const auto hint = closest(ref.name, candidates);
    yaml.error_at(ref.where, fmt::format("{}: unknown {} '{}'{}", ref.context,
                                         ref.services_too ? "identity or service" : "identity", ref.name,
                                         hint ? fmt::format(" (did you mean '{}'?)", *hint)
                                              : std::string(" (define it with kind: Identity)")));
  }
}

}  // namespace riskgate::policy
