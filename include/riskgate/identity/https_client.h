// A small blocking HTTPS GET client over OpenSSL, for the control plane only (JWKS URLs, the
// Kubernetes API): peer verification always on, hostname/IP checked, a deadline on the whole
// exchange and a bound on the body. Never called on the request path.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <riskgate/common/result.h>

namespace riskgate::identity {

struct HttpsUrl {
  std::string host;
  std::uint16_t port = 443;
  std::string path;  // with query, "/" at least
};
Result<HttpsUrl> parse_https_url(std::string_view url);

struct HttpsRequest {
  HttpsUrl url;
  std::string ca_file;       // trust anchors; empty: the system's default store
  std::string bearer_token;  // sent as Authorization: Bearer when set
  std::chrono::milliseconds timeout{5000};
  std::size_t max_body_bytes = 1 << 20;
};

struct HttpsResponse {
  int status = 0;
  std::string body;
};

Result<HttpsResponse> https_get(const HttpsRequest &request);

}  // namespace riskgate::identity
