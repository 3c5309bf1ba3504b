// One decision as the proxy records it when a stolen token is replayed: every field the decision log
// writes is set, with values of realistic size. Header-only so that bench/audit_log_bench.cpp, which
// does not link the test support library, measures the very line the audit tests check.
#pragma once

#include <riskgate/common/decision.h>

namespace riskgate::test {

inline Decision sample_decision()
{
  Decision d;
  d.id = 1795962450816253;
  d.time_unix_ns = 1795962450816253000;
  d.service = "orders";
  d.source_identity = 1269977084;
  d.source_identity_name = "batch";
  d.source_address = "10.213.121.3:42814";
  d.method = "GET";
  d.route = "/orders/{id}";
  d.token_fingerprint = "e723fc43aacbe57ebd764f63fbc6e076";
  d.score = 100;
  d.contributions = {{"binding", 100, "token of svc:frontend (bound to frontend) presented by batch"},
                     {"roaming", 60, "token seen from 2 workload identities within 10m; now from batch"}};
  d.action = Action::block;
  d.block_ttl_ms = 600000;
  d.policy_version = "3d35358ceb03";
  d.evaluation_ns = 1270;
  return d;
}

}  // namespace riskgate::test
