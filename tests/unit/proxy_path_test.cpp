// The path normaliser against a table of spellings: each becomes its canonical path (what the
// rules judge and the upstream receives) or is refused with a reason.
#include <doctest/doctest.h>

#include <string>

#include "proxy/path.h"

using namespace riskgate::proxy;

namespace {

struct Spelling {
  const char *target;
  const char *canonical;  // nullptr: refused with `refusal`
  const char *refusal = "";
};

// Canonical target, or "refused: <reason>".
std::string canonicalise(std::string target, const PathOptions &options = {})
{
  const auto result = canonicalise_target(target.data(), target.size(), options);
  if (!result.refusal.empty())
    return "refused: " + std::string(result.refusal);
  target.resize(result.length);
  return target;
}

}  // namespace

TEST_CASE("every spelling of a path becomes its canonical path, or is refused")
{
  const Spelling table[] = {
      {"/admin", "/admin"},
      {"/%61dmin", "/admin"},
      {"/%41DMIN", "/ADMIN"},  // decoded, never case-folded: /ADMIN is another resource
      {"/ADMIN", "/ADMIN"},
      {"//admin", "/admin"},
      {"/admin//x///y", "/admin/x/y"},
      {"/x/../admin", "/admin"},
      {"/./admin", "/admin"},
      {"/admin/.", "/admin/"},
      {"/admin/x/..", "/admin/"},
      {"/admin/", "/admin/"},
      {"/admin/%2e%2e/secret", "/secret"},
      {"/admin/%2E./secret", "/secret"},
      {"/public/.%2e/admin/x", "/admin/x"},
      {"/a/b/c/./../../g", "/a/g"},  // RFC 3986 5.2.4's own example
      {"/mid/content=5/../6", "/mid/6"},
      {"/..a/b../.../", "/..a/b../.../"},  // only "." and ".." are dot segments
      {"/", "/"},
      {"//", "/"},
      {"/.", "/"},
      {"/x/..", "/"},
      {"/%7euser/%2d%2E%5f%30", "/~user/-._0"},
      {"/a%3fb%2a%c3%a9", "/a%3Fb%2A%C3%A9"},  // reserved and non-ASCII stay encoded, hex upper case
      {"/a%25%32%66", "/a%252f"},              // decoded once: %25 stays, so "%2f" is data, not a slash
      {"/a?x=%2e%2e/../%61&b=%2F", "/a?x=%2e%2e/../%61&b=%2F"},  // the query as sent
      {"/x/../a/?", "/a/?"},
      {"/a/./b?c/../d", "/a/b?c/../d"},
      {"*", "*"},
      {"/a%2Fb", nullptr, "encoded slash or backslash in the path"},
      {"/a%2fb", nullptr, "encoded slash or backslash in the path"},
      {"/admin%2F..%2Fsecret", nullptr, "encoded slash or backslash in the path"},
      {"/a%5Cb", nullptr, "encoded slash or backslash in the path"},
      {"/a%5cb", nullptr, "encoded slash or backslash in the path"},
      {"/a\\b", nullptr, "backslash in the path"},
      {"/a%00", nullptr, "encoded NUL in the path"},
      {"/a%", nullptr, "invalid percent-encoding in the path"},
      {"/a%6", nullptr, "invalid percent-encoding in the path"},
      {"/a%6?1", nullptr, "invalid percent-encoding in the path"},
      {"/a%g1", nullptr, "invalid percent-encoding in the path"},
      {"/a%%41", nullptr, "invalid percent-encoding in the path"},
      {"/..", nullptr, "path climbs above the root"},
      {"/../admin", nullptr, "path climbs above the root"},
      {"/a/../../admin", nullptr, "path climbs above the root"},
      {"/%2e%2e/admin", nullptr, "path climbs above the root"},
      {"//..", nullptr, "path climbs above the root"},  // merged first: "/.." climbs
      {"/a#b", nullptr, "fragment in the request-target"},
      {"/a?b#c", nullptr, "fragment in the request-target"},
  };
  for (const auto &s : table) {
    const std::string target = s.target;
    CAPTURE(target);
    const std::string expected = s.canonical != nullptr ? s.canonical : "refused: " + std::string(s.refusal);
    CHECK(canonicalise(s.target) == expected);
    if (s.canonical != nullptr)
      CHECK(canonicalise(s.canonical) == s.canonical);  // canonical is a fixed point
  }
}

TEST_CASE("the path options relax the slash rules one by one")
{
  PathOptions keep_empty;
  keep_empty.merge_slashes = false;
  CHECK(canonicalise("//admin//x/", keep_empty) == "//admin//x/");
  CHECK(canonicalise("/a//..", keep_empty) == "/a/");  // ".." takes the empty segment (RFC 3986 5.2.4)
  CHECK(canonicalise("//..", keep_empty) == "/");
  CHECK(canonicalise("/a%2fb", keep_empty) == "refused: encoded slash or backslash in the path");

  PathOptions encoded_slash;
  encoded_slash.reject_encoded_slash = false;
  CHECK(canonicalise("/a%2fb/%5c", encoded_slash) == "/a%2Fb/%5C");   // data in its segment, hex upper case
  CHECK(canonicalise("/x/a%2F..%2F/../y", encoded_slash) == "/x/y");  // "a%2F..%2F" is one segment
  CHECK(canonicalise("/a\\b", encoded_slash) == "refused: backslash in the path");
}
