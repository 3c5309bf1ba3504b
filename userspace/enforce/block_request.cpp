// From a decision to the block it asks for, and how targets are named.
#include <riskgate/enforce/enforce.h>

#include <fmt/format.h>

#include <riskgate/common/net.h>

namespace riskgate {

namespace {

// What `riskgatectl blocks` shows as the reason: the rule, or the strongest signal and the score.
std::string block_reason(const Decision &decision)
{
  if (!decision.rule.empty())
    return "rule " + decision.rule;
  const Contribution *top = nullptr;
  for (const auto &c : decision.contributions)
    if (!top || c.points > top->points)
      top = &c;
  return top ? fmt::format("{} (score {})", top->signal, decision.score)
             : fmt::format("score {}", decision.score);
}

}  // namespace

Result<BlockRequest> block_request(const Decision &decision, const sockaddr_storage &peer,
                                   std::uint64_t socket_cookie)
{
  if (decision.action != Action::block)
    return make_error(fmt::format("decision {} is {}, not a block", decision.id, to_string(decision.action)));
  BlockRequest request;
  request.ttl_ms = decision.block_ttl_ms;
  request.decision_id = decision.id;
  request.reason = block_reason(decision);
  BlockTarget &t = request.target;
  t.scope = decision.block_scope;
  switch (decision.block_scope) {
    case BlockScope::identity: t.identity = decision.source_identity; break;
    case BlockScope::pair:
      t.identity = decision.source_identity;
      t.peer_identity = decision.destination_identity;
      if (t.peer_identity == 0)  // nobody known is called: (caller, world) would be every unknown peer
        t.scope = BlockScope::identity;
      break;
    case BlockScope::connection:
      t.socket_cookie = socket_cookie;
      if (socket_cookie == 0)
        t.scope = BlockScope::ip;
      break;
    case BlockScope::ip: break;
  }
  // Identity 0 is "world": blocking it would block every unknown peer, so the peer's address is
  // blocked instead.
  if ((t.scope == BlockScope::identity || t.scope == BlockScope::pair) && t.identity == 0)
    t.scope = BlockScope::ip;
  if (t.scope == BlockScope::ip) {
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
      return make_error(fmt::format("decision {}: nothing to block: no workload identity and no peer address",
                                    decision.id));
    t.address = peer;
  }
  return request;
}

std::string describe(const BlockTarget &target)
{
  switch (target.scope) {
    case BlockScope::ip: {
      net::IpPrefix prefix;
      prefix.address = target.address;
      prefix.prefix_len =
          target.prefix_len ? target.prefix_len : (target.address.ss_family == AF_INET ? 32 : 128);
      return "ip " + net::to_string(prefix);
    }
    case BlockScope::identity: return fmt::format("identity {}", target.identity);
    case BlockScope::pair: return fmt::format("pair {}->{}", target.identity, target.peer_identity);
    case BlockScope::connection: return fmt::format("connection {}", target.socket_cookie);
  }
  return "unknown target";
}

}  // namespace riskgate
