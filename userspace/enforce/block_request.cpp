// From a decision to the block it asks for, and how targets are named.
#include <riskgate/enforce.h>

#include <fmt/format.h>

#include "kernel/addr.h"

namespace riskgate {

Result<BlockRequest> block_request(const Decision &decision, const sockaddr_storage &peer,
                                   std::uint64_t socket_cookie)
{
  if (decision.action != Action::block)
    return make_error(fmt::format("decision {} is {}, not a block", decision.id, to_string(decision.action)));
  BlockRequest request;
  request.ttl_ms = decision.block_ttl_ms;
  request.decision_id = decision.id;
  request.reason = decision.rule.empty() ? fmt::format("score {}", decision.score) : "rule " + decision.rule;
  BlockTarget &t = request.target;
  t.scope = decision.block_scope;
  switch (decision.block_scope) {
  case BlockScope::ip:
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
      return make_error(fmt::format("decision {}: ip block without a peer address", decision.id));
    t.address = peer;
    break;
  case BlockScope::identity:
    if (decision.source_identity == 0)
      return make_error(fmt::format("decision {}: the source is 'world' (unknown workload); use an ip-scoped "
                                    "block for unknown peers",
                                    decision.id));
    t.identity = decision.source_identity;
    break;
  case BlockScope::pair:
    t.identity = decision.source_identity;
    t.peer_identity = decision.destination_identity;
    break;
  case BlockScope::connection:
    if (socket_cookie == 0)
      return make_error(fmt::format("decision {}: connection block without a socket cookie", decision.id));
    t.socket_cookie = socket_cookie;
    break;
  }
  return request;
}

std::string describe(const BlockTarget &target)
{
  switch (target.scope) {
  case BlockScope::ip: {
    kernel::IpPrefix prefix;
    prefix.address = target.address;
    prefix.prefix_len = target.prefix_len ? target.prefix_len : (target.address.ss_family == AF_INET ? 32 : 128);
    return "ip " + kernel::to_string(prefix);
  }
  case BlockScope::identity: return fmt::format("identity {}", target.identity);
  case BlockScope::pair: return fmt::format("pair {}->{}", target.identity, target.peer_identity);
  case BlockScope::connection: return fmt::format("connection {}", target.socket_cookie);
  }
  return "unknown target";
}

}  // namespace riskgate
