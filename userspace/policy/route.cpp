#include <riskgate/policy/route.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace riskgate::policy {

namespace {

// Plain comparisons: the <cctype> functions are library calls, and this runs on every request.
bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}
bool is_hex(char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_uuid(std::string_view s)
{
  if (s.size() != 36)
    return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i]))
      return false;
  }
  return true;
}

// Variable segment: all digits, a UUID, or a hex run of 8+ characters holding at least one digit
// (so "/deadbeef" as a word stays, "/5f3a9c0e..." as an object id goes).
bool is_variable(std::string_view segment)
{
  if (segment.empty())
    return false;
  bool digits = true;
  bool hex = true;
  bool any_digit = false;
  for (const char c : segment) {
    digits = digits && is_digit(c);
    hex = hex && is_hex(c);
    any_digit = any_digit || is_digit(c);
  }
  return digits || is_uuid(segment) || (hex && any_digit && segment.size() >= 8);
}

// A percent-encoding as a canonical path has it: upper-case hex of a byte that is neither NUL nor
// unreserved (RFC 3986 2.3; those are written as themselves).
bool canonical_encoding(std::string_view hex)
{
  const auto value = [](char c) { return is_digit(c) ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  if (hex.size() < 2 || value(hex[0]) < 0 || value(hex[1]) < 0)
    return false;
  const char byte = static_cast<char>(value(hex[0]) * 16 + value(hex[1]));
  const bool unreserved = (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') || is_digit(byte) ||
                          std::string_view("-._~").find(byte) != std::string_view::npos;
  return byte != 0 && !unreserved;
}

// What in a pattern's path no canonical request path has (docs/proxy.md), so that the pattern could
// never match; nullptr when there is nothing.
const char *never_canonical(std::string_view path)
{
  if (path.find_first_of("\\?#") != std::string_view::npos)
    return "'\\', '?' or '#' in its path";
  for (std::size_t at = 0; at < path.size();) {
    const auto end = std::min(path.find('/', at + 1), path.size());
    const auto segment = path.substr(at + 1, end - at - 1);
    if ((segment.empty() && end < path.size()) || segment == "." || segment == "..")
      return "empty, '.' or '..' segments";
    for (auto i = segment.find('%'); i != std::string_view::npos; i = segment.find('%', i + 1))
      if (!canonical_encoding(segment.substr(i + 1, 2)))
        return "percent-encodings in lower case, of NUL or of unreserved characters "
               "(write %C3%A9 for %c3%a9, a for %61)";
    at = end;
  }
  return nullptr;
}

}  // namespace

void template_route(std::string_view path, std::string &out)
{
  out.clear();
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      out.push_back('/');
      ++i;
      continue;
    }
    std::size_t end = path.find('/', i);
    if (end == std::string_view::npos)
      end = path.size();
    const auto segment = path.substr(i, end - i);
    if (is_variable(segment))
      out.append("{id}");
    else
      out.append(segment);
    i = end;
  }
  if (out.empty())
    out.push_back('/');
}

bool RoutePattern::matches(std::string_view request_method, std::string_view route) const
{
  if (!method.empty() && method != request_method)
    return false;
  if (path.empty())
    return true;
  // "/admin/*" is /admin itself and everything below it (path is "/admin/"), not /administrator:
  // a rule about a directory that left out its own index would be a way around it.
  if (prefix)
    return route.starts_with(path) || route == std::string_view(path).substr(0, path.size() - 1);
  return route == path;
}

std::optional<std::string> check_route_pattern(std::string_view text)
{
  if (text == "*")
    return std::nullopt;
  std::string_view path = text;
  const auto space = text.find(' ');
  if (space != std::string_view::npos) {
    const auto method = text.substr(0, space);
    path = text.substr(space + 1);
    if (method != "*")
      for (const char c : method)
        if (!std::isupper(static_cast<unsigned char>(c)))
          return fmt::format("route '{}': the method must be upper case (GET, POST, ...) or *", text);
  }
  if (path.empty() || path.front() != '/')
    return fmt::format("route '{}': the path must start with '/' (\"GET /orders/{{id}}\", \"/admin/*\")",
                       text);
  if (path.find('*') != std::string_view::npos && !path.ends_with("/*"))
    return fmt::format("route '{}': '*' is allowed only as the last segment (\"/admin/*\")", text);
  if (const char *why = never_canonical(path))
    return fmt::format(
        "route '{}' could never match: requests are matched by their canonical path, which has no {}", text,
        why);
  return std::nullopt;
}

RoutePattern parse_route_pattern(std::string_view text)
{
  RoutePattern pattern;
  if (text == "*")
    return pattern;
  std::string_view path = text;
  const auto space = text.find(' ');
  if (space != std::string_view::npos) {
    if (text.substr(0, space) != "*")
      pattern.method = std::string(text.substr(0, space));
    path = text.substr(space + 1);
  }
  if (path.ends_with("/*")) {
    pattern.prefix = true;
    path.remove_suffix(1);
  }
  template_route(path, pattern.path);
  return pattern;
}

}  // namespace riskgate::policy
