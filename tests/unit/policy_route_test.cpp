// Rule route patterns against canonical request paths (the proxy makes them canonical first).
#include <doctest/doctest.h>

#include <string>

#include <riskgate/policy/route.h>

using namespace riskgate::policy;

namespace {

bool matches(const char *pattern, const char *path, const char *method = "GET")
{
  std::string route;
  template_route(path, route);
  return parse_route_pattern(pattern).matches(method, route);
}

}  // namespace

TEST_CASE("a prefix pattern covers the directory itself and everything below it, nothing beside it")
{
  CHECK(matches("/admin/*", "/admin"));
  CHECK(matches("/admin/*", "/admin/"));
  CHECK(matches("/admin/*", "/admin/users/7"));
  CHECK_FALSE(matches("/admin/*", "/administrator"));
  CHECK_FALSE(matches("/admin/*", "/adm"));
  CHECK_FALSE(matches("/admin/*", "/"));
  CHECK(matches("/*", "/"));
  CHECK(matches("/*", "/anything"));
  CHECK(matches("/orders/{id}/*", "/orders/42"));
  CHECK(matches("/orders/{id}/*", "/orders/42/items"));
  CHECK_FALSE(matches("POST /admin/*", "/admin/x"));
}

TEST_CASE("routes are case-sensitive, as paths are (RFC 3986 6.2.2.1)")
{
  CHECK_FALSE(matches("/admin/*", "/ADMIN"));
  CHECK_FALSE(matches("/admin/*", "/Admin/x"));
  CHECK(matches("/Admin/*", "/Admin/x"));
  CHECK_FALSE(matches("GET /orders/{id}", "/orders/42", "get"));
}

TEST_CASE("a route no canonical path could match is refused when the policy is checked")
{
  for (const char *never : {"/caf%c3%a9/*", "/%61dmin/*", "/a//b", "//a", "/a/./b", "/a/../b", "/a/..",
                            "/a%00", "/a%2", "/a%zz", "GET /a\\b", "/a?b", "/a#b"}) {
    CAPTURE(std::string(never));
    const auto problem = check_route_pattern(never);
    REQUIRE(problem.has_value());
    CHECK(problem->find("could never match: requests are matched by their canonical path") !=
          std::string::npos);
  }
  for (const char *fine :
       {"/caf%C3%A9/*", "/a%2F%5Cb", "/admin/", "/", "/*", "/orders/{id}/*", "/..a/b..", "GET /a;b=1", "*"})
    CHECK_MESSAGE(!check_route_pattern(fine).has_value(), fine);
}
