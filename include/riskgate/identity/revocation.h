// Revoked tokens, by jti or by token fingerprint, from a file that reloads when it changes.
//
// File format: one entry per line, "jti <value>" or "sha256 <32 hex digits>" (the fingerprint that
// decisions and the audit log print); '#' starts a comment. A file that fails to parse keeps the
// previous list in force and the error names file:line.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include <riskgate/common/result.h>

#include <riskgate/identity/encoding.h>

namespace riskgate::identity {

class RevocationList {
 public:
  RevocationList() = default;
  explicit RevocationList(std::string path) : path_(std::move(path)) {}

  // Reloads the file if it changed since the last call. Ok(true): a new list is in force.
  Result<bool> poll();

  bool revoked(std::string_view jti, const Fingerprint &fp) const;
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Replaces the list from text (tests, and the file loader).
  Result<void> load(std::string_view text, const std::string &origin);

 private:
  struct Entries {
    std::unordered_set<std::string> jtis;
    std::unordered_set<std::string> fingerprints;  // hex
  };
  std::string path_;
  std::mutex writer_;
  std::optional<FileStamp> stamp_;
  std::atomic<std::shared_ptr<const Entries>> entries_{std::make_shared<const Entries>()};
  std::atomic<std::uint64_t> generation_{1};
};

}  // namespace riskgate::identity
