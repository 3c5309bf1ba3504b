// Shared by the proxy, which keeps it per upstream, and the risk engine's service-health signal.
#pragma once

#include <cstdint>
#include <string>

namespace riskgate {

// Live state of one upstream, kept by the proxy's pool and read by the service-health signal.
struct UpstreamHealth {
  std::string name;
  std::uint32_t consecutive_failures = 0;
  double error_ratio = 0;  // recent 5xx + connect failures / requests
  double latency_ewma_ms = 0;
  bool healthy = true;
};

}  // namespace riskgate
