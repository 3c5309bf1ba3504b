// Names of decision enums (decision.h): the wire names of the log, the policy and the CLI.
#include <riskgate/common/decision.h>

namespace riskgate {

const char *to_string(Action action)
{
  switch (action) {
    case Action::allow: return "allow";
    case Action::challenge: return "challenge";
    case Action::limit: return "limit";
    case Action::block: return "block";
  }
  return "unknown";
}

const char *to_string(BlockScope scope)
{
  switch (scope) {
    case BlockScope::ip: return "ip";
    case BlockScope::identity: return "identity";
    case BlockScope::pair: return "pair";
    case BlockScope::connection: return "connection";
  }
  return "unknown";
}

}  // namespace riskgate
