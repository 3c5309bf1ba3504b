// Decision -> the proxy's answer. The agent owns this because it is where the decision meets the
// wire: the risk engine knows nothing of HTTP, the identity module supplies the challenge.
#pragma once

#include <riskgate/common/decision.h>
#include <riskgate/common/identity.h>
#include <riskgate/proxy/request.h>

namespace riskgate::agent {

// The proxy's answer for a decision: forward (allow, or anything unenforced), 401 with
// WWW-Authenticate (challenge), 429 with Retry-After (limit), 403 and close (block). The first form
// fills `verdict` in place (reset first, its buffers reused): the per-request path.
void to_verdict(const Decision &decision, HookVerdict &verdict);
HookVerdict to_verdict(const Decision &decision);

// The 401 answer for a request whose credential is missing or not valid (RFC 6750 section 3):
// WWW-Authenticate: Bearer realm="...", error="invalid_token", error_description="..." (no error
// code when no credential was presented at all).
HookVerdict unauthorized(const RequestIdentity &identity, std::string_view realm = "riskgate");

}  // namespace riskgate::agent
