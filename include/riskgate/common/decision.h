// A decision is a value: the audit log writes it, the CLI explains it, enforcement acts on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <riskgate/common/identity.h>

namespace riskgate {

enum class Action { allow, challenge, limit, block };

enum class BlockScope { ip, identity, pair, connection };

struct Contribution {
  std::string signal;  // "roaming", "rate", ...
  int points = 0;
  std::string evidence;  // "token seen from 2 workloads in 10m: frontend, batch"
};

struct Decision {
  std::uint64_t id = 0;
  std::uint64_t time_unix_ns = 0;
  std::string service;
  IdentityId source_identity = 0;
  std::string source_identity_name;
  IdentityId destination_identity = 0;
  std::string destination_identity_name;
  std::string source_address;       // "10.0.0.2:43210"
  std::uint64_t socket_cookie = 0;  // connection the request came on (connection-scoped blocks)
  std::string method;
  std::string route;  // method-independent route template (/orders/{id})
  std::string token_fingerprint;
  int score = 0;  // 0..100
  std::vector<Contribution> contributions;
  std::string rule;  // hard rule that decided, empty when scored
  Action action = Action::allow;
  bool enforced = true;  // false in observe mode: what would have happened
  BlockScope block_scope = BlockScope::identity;
  std::uint64_t block_ttl_ms = 0;   // block: how long
  bool kernel_block = true;         // block: false = answer 403 to this request only (route-scoped rules)
  std::uint32_t retry_after_s = 0;  // limit: Retry-After
  std::string policy_version;
  std::uint64_t evaluation_ns = 0;
  // The engine's key for the caller's learned state (its identity, or its address when it has
  // none), so that observe() finds it without re-deriving it. Not logged.
  std::uint64_t subject = 0;
};

const char *to_string(Action action);
const char *to_string(BlockScope scope);

}  // namespace riskgate
