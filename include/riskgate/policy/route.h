// Route templates: the path with its variable segments collapsed, so /orders/123 and /orders/456 are one
// endpoint ("/orders/{id}"). Numeric segments, UUIDs and long hex runs become {id}. Used by the
// novelty signal (which endpoints an identity calls) and by rules that name routes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace riskgate::policy {

// Writes the template of `path` (query already removed) into `out`, reusing its capacity.
void template_route(std::string_view path, std::string &out);

// Routes are matched against the proxy's canonical path (docs/proxy.md), case-sensitively: /ADMIN is
// not /admin (RFC 3986 6.2.2.1), and the upstream receives /ADMIN as it was sent.
// A rule's route pattern: "GET /orders/{id}", "/orders/*" (prefix), "* /health" or "*".
struct RoutePattern {
  std::string method;   // empty = any
  std::string path;     // templated; empty = any
  bool prefix = false;  // pattern ended in "/*": the path before it and everything below

  bool matches(std::string_view method, std::string_view route) const;
};

std::optional<std::string> check_route_pattern(std::string_view text);
RoutePattern parse_route_pattern(std::string_view text);  // text accepted by check_route_pattern

}  // namespace riskgate::policy
