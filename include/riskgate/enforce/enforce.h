// Decisions become kernel state through this interface; the proxy and the risk engine never see
// map layouts. Implemented by userspace/enforce/ over userspace/kernel/.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include <riskgate/common/decision.h>
#include <riskgate/common/result.h>

namespace riskgate {

struct BlockTarget {
  BlockScope scope = BlockScope::identity;
  sockaddr_storage address{};       // ip scope
  std::uint8_t prefix_len = 0;      // ip scope: 0 = host (32 / 128)
  IdentityId identity = 0;          // identity scope, and the source of a pair
  IdentityId peer_identity = 0;     // pair scope: destination
  std::uint64_t socket_cookie = 0;  // connection scope
};

struct BlockRequest {
  BlockTarget target;
  std::uint64_t ttl_ms = 0;  // 0 = until removed
  std::uint64_t decision_id = 0;
  std::string reason;
  bool manual = false;  // operator action (riskgatectl): wins over automatic re-blocks
};

// The block a decision asks for, aimed at the request's peer (ip scope), its identities (identity,
// pair) or its socket (connection). A scope the request cannot fill narrows instead of failing: a
// pair whose destination is world (no identity owns it) blocks the source identity; identity 0
// ("world", never blocked by identity) or a connection without a cookie blocks the peer's address.
// Errors when the decision is not a block, or nothing is left to aim at.
Result<BlockRequest> block_request(const Decision &decision, const sockaddr_storage &peer,
                                   std::uint64_t socket_cookie);
// "ip 10.0.0.0/24", "identity 7", "pair 3->4", "connection 1234": logs, errors, the CLI.
std::string describe(const BlockTarget &target);

class Enforcer {
 public:
  virtual ~Enforcer() = default;
  // Must be cheap and non-blocking enough for a worker thread (a few map writes).
  virtual Result<void> block(const BlockRequest &request) = 0;
  virtual Result<void> unblock(const BlockTarget &target, bool manual) = 0;
};

}  // namespace riskgate
