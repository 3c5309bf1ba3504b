// Who is calling: the workload (from the kernel, never from a header) and the credential (verified).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <riskgate/common/net.h>

namespace riskgate {

using IdentityId = std::uint32_t;  // 0 = unknown/world; same numbering as the kernel maps (abi.h)

// Kernel-attested identity of a connection's peer. Implemented over the datapath's maps (socket tags
// of local workloads, ipcache for remote peers); a fake in unit tests.
class PeerIdentitySource {
 public:
  virtual ~PeerIdentitySource() = default;
  virtual IdentityId peer_identity(const sockaddr_storage &peer, const sockaddr_storage &local,
                                   std::uint64_t socket_cookie) const = 0;
};

enum class CredentialStatus {
  none,  // no credential presented
  valid,
  invalid,  // bad signature, malformed, wrong alg, unknown kid
  expired,
  not_yet_valid,
  wrong_audience,
  wrong_issuer,
  revoked,
};

enum class BindingVerdict {
  not_applicable,  // no token, or no binding declared for its subject
  bound,           // presented by a workload it belongs to
  violation,       // presented by a workload it does not belong to
};

// The client certificate of a connection that arrived over mTLS, as the TLS layer hands it over:
// the SHA-256 of its DER encoding (what RFC 8705 cnf.x5t#S256 confirms) and its SPIFFE ID if any.
struct ClientCertificate {
  std::array<std::uint8_t, 32> sha256{};
  std::string spiffe_id;
};

// One per request, immutable once built. Never holds the token itself, only its fingerprint.
struct RequestIdentity {
  IdentityId workload = 0;
  std::string workload_name;      // registry name, "world" when unknown
  sockaddr_storage source{};      // peer address
  std::string token_fingerprint;  // hex SHA-256 prefix of the raw token; empty without token
  CredentialStatus credential = CredentialStatus::none;
  bool credential_required = false;  // the service demands a valid JWT (auth.jwt.required)
  std::string subject;               // verified claims subset
  std::string client_id;             // azp / client_id
  std::string issuer;
  std::string jti;
  std::uint64_t expires_at = 0;  // unix seconds
  BindingVerdict binding = BindingVerdict::not_applicable;
  std::string failure_reason;  // human-readable, for the 401 body and the decision log
  std::string binding_reason;  // why the binding verdict is what it is (violation evidence)
};

// One identity as the registry compiles it from policy: what the kernel needs to recognise it.
struct IdentityRecord {
  IdentityId id = 0;
  std::string name;
  std::vector<std::uint64_t> cgroup_ids;  // local workloads
  std::vector<net::IpPrefix> cidrs;       // remote peers
};

}  // namespace riskgate
