// The policy document model (docs/policy.md): what the YAML files in a policy directory say,
// after validation. userspace/policy/ parses and validates it (file:line:column errors); identity/,
// risk/ and the agent read the parts that concern them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <string_view>

#include <riskgate/common/decision.h>

namespace riskgate::policy {

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

// kind: Identity
struct IdentitySelector {
  std::string cgroup;         // glob on the cgroup v2 path, relative to the cgroup root
  std::string k8s_namespace;  // kubernetes: {namespace, serviceAccount}
  std::string k8s_service_account;
  std::string cidr;  // "10.0.1.0/24" or "fd00::/64"
};
struct Identity {
  std::string name;    // metadata.name
  std::string spiffe;  // optional URI name
  std::vector<IdentitySelector> selectors;
  SourceLocation where;
};

// kind: Service
struct JwtAuth {
  bool required = false;
  std::vector<std::string> issuers;
  std::vector<std::string> audiences;
  std::string jwks_file;
  std::string jwks_url;
  std::vector<std::string> algorithms;  // allowed algs; empty = every asymmetric alg the keys allow
  bool allow_hs256 = false;             // symmetric keys only when explicitly configured
  std::uint32_t leeway_s = 60;
  std::string revocation_file;
};
struct Binding {
  std::string subject;                  // matches sub, azp or client_id
  std::vector<std::string> identities;  // identity names allowed to present it
};
struct Service {
  std::string name;
  std::string listen;  // gateway "HOST:PORT"; empty with transparent
  std::optional<std::uint16_t> transparent_port;
  std::string upstream;  // "HOST:PORT"
  // Gateway: the identity of the workload behind the upstream, named where the upstream's address
  // says nothing (or the wrong thing). Empty: whoever owns the upstream's address.
  std::string identity;
  std::optional<JwtAuth> jwt;
  std::vector<Binding> bindings;
  SourceLocation where;
};

// kind: RiskPolicy
enum class Mode { enforce, observe };
// Signal names: credential, binding, roaming, rate, novelty, failures, payload, health, watchlist.
// A signal the policy does not mention runs with its documented defaults (docs/policy.md).
struct Signal {
  bool enabled = true;
  int weight = 0;
  std::map<std::string, std::string> params;  // signal-specific (window, warmup, learn, ...), validated
};
struct Rule {
  std::string name;
  enum class Effect { allow, deny } effect = Effect::deny;
  std::vector<std::string> from;    // identity names ("*" = any)
  std::vector<std::string> to;      // identity or service names
  std::vector<std::string> routes;  // "METHOD /path/{id}" templates; empty = all
  std::optional<Mode> mode;         // per-rule observe
  SourceLocation where;
};
// A local (client, server) identity pair whose connections go socket-to-socket in the kernel (sk_msg
// redirect through the sockhash) instead of through the TCP/IP stack; blocks still apply first.
struct FastPathPair {
  std::string from;  // identity name of the connecting workload
  std::string to;    // identity name of the accepting workload
  SourceLocation where;
};
struct RiskPolicy {
  std::string name;
  Mode mode = Mode::enforce;
  std::map<std::string, Signal> signals;
  int challenge_at = 40;
  int limit_at = 60;
  int block_at = 85;
  double limit_rate_per_s = 1;
  double limit_burst = 3;
  std::uint32_t retry_after_s = 5;
  BlockScope block_scope = BlockScope::identity;
  std::uint64_t block_ttl_ms = 600000;
  double block_escalate_factor = 2;
  std::uint64_t block_max_ttl_ms = 86400000;
  std::vector<std::string> deny_identities;
  std::vector<std::string> deny_cidrs;
  std::vector<std::string> watch_identities;
  std::vector<std::string> watch_cidrs;
  std::vector<Rule> rules;
  std::vector<FastPathPair> fast_path;  // every declared (from, to) once, in declaration order
  SourceLocation where;
};

struct PolicySet {
  std::vector<Identity> identities;
  std::vector<Service> services;
  std::vector<RiskPolicy> risk_policies;  // at most one; none = every default (docs/policy.md)
  std::string version;                    // content hash of every document, for decisions and metrics
  std::vector<std::string> files;         // where the documents came from ("<embedded>" for the default)
};

struct Diagnostic {
  SourceLocation where;
  std::string message;
};

// "file:line:column: message"
std::string to_string(const Diagnostic &diagnostic);
// One line each, in order.
std::string to_string(const std::vector<Diagnostic> &diagnostics);

// Outcome of loading: a validated set, or every error found (never a partial set).
struct LoadResult {
  std::optional<PolicySet> set;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return set.has_value(); }
};

// A policy directory (every *.yaml / *.yml in it, sorted by name), or a single file.
LoadResult load_path(const std::string &path);
// Documents given as text; `file` names them in diagnostics.
LoadResult load_text(std::string_view text, const std::string &file);
// The policy compiled into the binary (policies/default.yaml).
LoadResult load_default();

}  // namespace riskgate::policy
