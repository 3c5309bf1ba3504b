// The table of valid and malformed HTTP/1.1 requests shared by the codec unit test and the
// differential test against Node.js: what riskgate must accept (and what the upstream then receives)
// and what it must refuse, with which status.
#pragma once

#include <string>
#include <vector>

namespace riskgate::test {

struct HttpCase {
  const char *name;
  std::string raw;
  int status;            // 0: accepted
  std::string upstream;  // accepted: the bytes the upstream receives (hook adds x-riskgate-decision: 7)
};

const std::vector<HttpCase> &http_request_cases();

}  // namespace riskgate::test
