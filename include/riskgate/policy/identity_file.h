// The static identity file (riskgated --identity-file, settings identityFile; docs/identity.md):
//
//   identities:
//     - {name: legacy, spiffe: spiffe://example.org/legacy, selectors: [{cgroup: /system.slice/x.service}]}
//
// Its entries are read by the code that reads a kind: Identity spec, so both refuse the same things
// (unknown keys, a selector with more or less than one key, bad CIDRs and globs) in the same words.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/policy/policy.h>

namespace riskgate::policy {

// The identities, or every error found (never part of the file).
struct IdentityFileResult {
  std::optional<std::vector<Identity>> identities;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return identities.has_value(); }
};

// `file` names the text in diagnostics.
IdentityFileResult load_identity_file(std::string_view text, const std::string &file);

}  // namespace riskgate::policy
