// Small encodings the identity module needs everywhere: base64url (JWS, JWK), hex, SHA-256 token
// fingerprints, a fast seeded hash for cache indexing, and a file change stamp for reload-on-change.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <riskgate/common/result.h>

namespace riskgate::identity {

// RFC 4648 section 5 without padding (RFC 7515 section 2). nullopt on any character outside the
// alphabet, on '=' padding and on an impossible length.
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view in);

std::string hex(const std::uint8_t *data, std::size_t size);

// Fingerprint of a raw token: the first 16 bytes of its SHA-256. The token itself never leaves this
// module; logs, decisions and revocation lists name it by this value (32 hex digits).
using Fingerprint = std::array<std::uint8_t, 16>;
Fingerprint fingerprint(std::string_view token);
std::string to_hex(const Fingerprint &fp);

std::array<std::uint8_t, 32> sha256(std::string_view data);

// Non-cryptographic 64-bit hash (multiply-mix over 16-byte blocks), seeded per process so that
// nobody outside can aim many tokens at one cache shard. Used only to index; callers compare the
// full key after a hit.
std::uint64_t fast_hash(std::string_view data, std::uint64_t seed);
std::uint64_t process_hash_seed();

// The oldest queued OpenSSL error as text (the queue is cleared), or `if_none` when it is empty.
std::string openssl_error(const char *if_none = "unknown OpenSSL error");

// What identifies one version of a file: a change in any field means "reload".
struct FileStamp {
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp &) const = default;
};
std::optional<FileStamp> file_stamp(const std::string &path);

// Reads `path` when its stamp differs from `last` (and updates `last`, so that a bad version is
// reported once, not on every poll). Ok(nullopt): unchanged.
Result<std::optional<std::string>> read_if_changed(const std::string &path, std::optional<FileStamp> &last);

}  // namespace riskgate::identity
