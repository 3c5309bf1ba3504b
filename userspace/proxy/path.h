// Canonical request paths: what the hook judges and the upstream receives is one and the same
// spelling, so that no other spelling of a path (/%61dmin, //admin, /x/../admin) gets around a rule
// written for it. See docs/proxy.md, "Canonical paths".
#pragma once

#include <cstddef>
#include <string_view>

#include <riskgate/proxy/proxy.h>

namespace riskgate::proxy {

struct CanonicalTarget {
  std::size_t length = 0;    // of the canonical target, written over the original (it is never longer)
  std::string_view refusal;  // non-empty: the target cannot be normalised safely (400 with this reason)
};

// Rewrites an origin-form request-target in place: RFC 3986 5.2.4 dot-segment removal after
// decoding the percent-encoded unreserved characters (ALPHA DIGIT - . _ ~), the hex of every other
// percent-encoding in upper case, empty segments merged (PathOptions). The query follows as it was.
// Refused: dot segments above the root, invalid percent-encoding, an encoded NUL, %2F and %5C
// (PathOptions), a raw backslash and a fragment. "*" (OPTIONS *) is kept as it is.
CanonicalTarget canonicalise_target(char *target, std::size_t length, const PathOptions &options);

}  // namespace riskgate::proxy
