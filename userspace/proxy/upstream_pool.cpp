#include "upstream_pool.h"

#include <netinet/in.h>

#include <utility>

#include <riskgate/common/net.h>

namespace riskgate::proxy {

namespace {

socklen_t sockaddr_len(const sockaddr_storage &a)
{
  return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

UpstreamPool::UpstreamPool(std::string name, const sockaddr_storage &address, std::size_t max_idle)
    : name_(std::move(name)),
      address_(address),
      address_len_(sockaddr_len(address)),
      host_(net::endpoint_string(address)),
      max_idle_(max_idle)
{
  health_.name = name_;
}

void UpstreamPool::record(bool ok, std::uint64_t latency_ns)
{
  constexpr double alpha = 0.05;
  requests_.store(requests_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const std::uint32_t consecutive = ok ? 0 : health_.consecutive_failures + 1;
  const double error = (1 - alpha) * health_.error_ratio + (ok ? 0.0 : alpha);
  double latency = health_.latency_ewma_ms;
  if (latency_ns > 0) {
    const double ms = static_cast<double>(latency_ns) / 1e6;
    latency = latency == 0 ? ms : (1 - alpha) * latency + alpha * ms;
  }
  health_.consecutive_failures = consecutive;
  health_.error_ratio = error;
  health_.latency_ewma_ms = latency;
  health_.healthy = healthy(health_);
  consecutive_failures_.store(consecutive, std::memory_order_relaxed);
  error_ratio_.store(error, std::memory_order_relaxed);
  latency_ewma_ms_.store(latency, std::memory_order_relaxed);
}

void UpstreamPool::merge_into(UpstreamHealth &worst) const
{
  const auto requests = requests_.load(std::memory_order_relaxed);
  worst.consecutive_failures =
      std::max(worst.consecutive_failures, consecutive_failures_.load(std::memory_order_relaxed));
  if (requests > 0) {
    // Workers see similar traffic (SO_REUSEPORT): the worst worker's view is the honest one.
    worst.error_ratio = std::max(worst.error_ratio, error_ratio_.load(std::memory_order_relaxed));
    worst.latency_ewma_ms = std::max(worst.latency_ewma_ms, latency_ewma_ms_.load(std::memory_order_relaxed));
  }
  worst.healthy = healthy(worst);
}

}  // namespace riskgate::proxy
