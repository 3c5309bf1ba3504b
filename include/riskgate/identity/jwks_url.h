// A JWKS published at an https URL, fetched periodically (with a timeout) into a KeyStore. The last
// good key set stays in force while the issuer is unreachable, and can be kept in a cache file so
// that a restart without network still verifies tokens.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <riskgate/common/result.h>

#include <riskgate/identity/https_client.h>
#include <riskgate/identity/jwk.h>

namespace riskgate::identity {

struct JwksUrlOptions {
  std::chrono::seconds interval{300};  // refetch after a success
  std::chrono::seconds retry{30};      // refetch after a failure
  std::chrono::milliseconds timeout{5000};
  std::string ca_file;     // empty: system trust store
  std::string cache_file;  // empty: no on-disk cache
  std::size_t max_bytes = 1 << 20;
};

class JwksUrl {
 public:
  JwksUrl(std::string url, std::shared_ptr<KeyStore> keys, JwksUrlOptions options = {});

  // Fetches when due. Ok(true): new keys in force; Ok(false): not due or unchanged.
  Result<bool> poll(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Loads the cache file, if any (at start, before the first fetch).
  Result<bool> load_cache();
  const std::string &url() const { return url_; }

 private:
  std::string url_;
  std::shared_ptr<KeyStore> keys_;
  JwksUrlOptions options_;
  std::optional<std::chrono::steady_clock::time_point> next_;
  std::string last_body_;
};

}  // namespace riskgate::identity
