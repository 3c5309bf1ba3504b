// Where riskgate's files live by default, for riskgated, riskgatectl and the deploy manifests alike
// (deploy/ and docs/operations.md name the same paths).
#pragma once

namespace riskgate::paths {

inline constexpr const char *kBpffs = "/sys/fs/bpf";
inline constexpr const char *kPinRoot = "/sys/fs/bpf/riskgate";
inline constexpr const char *kAdminSocket = "/run/riskgate/admin.sock";
inline constexpr const char *kMetricsListen = "127.0.0.1:9464";
inline constexpr const char *kAuditLog = "/var/log/riskgate/decisions.jsonl";
inline constexpr const char *kPolicyDir = "/etc/riskgate/policies";

}  // namespace riskgate::paths
