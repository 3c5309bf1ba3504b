// One destination of one worker: its idle keep-alive connections and its health.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <riskgate/common/upstream_health.h>

namespace riskgate::proxy {

struct UpConn;

// Everything here is the owning worker's, except the health counters, which Proxy::upstream_health
// also reads (merge_into) from any thread.
class UpstreamPool {
 public:
  // `name`: the configured upstream, or "ip:port" for a transparent destination.
  UpstreamPool(std::string name, const sockaddr_storage &address, std::size_t max_idle);
  UpstreamPool(const UpstreamPool &) = delete;
  UpstreamPool &operator=(const UpstreamPool &) = delete;

  const std::string &name() const { return name_; }
  const sockaddr_storage &address() const { return address_; }
  socklen_t address_len() const { return address_len_; }
  const std::string &host() const
  {
    return host_;
  }  // "ip:port", the Host of an HTTP/1.0 request that had none

  // ---- idle connections: LIFO, the most recently used (warmest) first ----
  UpConn *take_idle()
  {
    if (idle_.empty())
      return nullptr;
    UpConn *u = idle_.back();
    idle_.pop_back();
    return u;
  }
  // False when the pool is full: the caller closes the connection instead.
  bool park(UpConn &u)
  {
    if (idle_.size() >= max_idle_)
      return false;
    idle_.push_back(&u);
    return true;
  }
  void forget(UpConn &u)  // a closed connection leaves the pool
  {
    if (auto it = std::find(idle_.begin(), idle_.end(), &u); it != idle_.end())
      idle_.erase(it);
  }
  std::span<UpConn *const> idle() const { return idle_; }

  // ---- health ----
  // One exchange ended: ok unless the upstream failed (connect error, timeout, 5xx, reset);
  // latency_ns 0 when there is no response time to count.
  void record(bool ok, std::uint64_t latency_ns);
  // This worker's view, the one the hook sees (RequestView::upstream).
  const UpstreamHealth &health() const { return health_; }
  // Any thread: folds this worker's counters into `worst` (same name), keeping the worst of each.
  void merge_into(UpstreamHealth &worst) const;

 private:
  // The thresholds of UpstreamHealth::healthy, for this worker's view and the merged one alike.
  static constexpr std::uint32_t kUnhealthyConsecutiveFailures = 5;
  static constexpr double kUnhealthyErrorRatio = 0.5;
  static bool healthy(const UpstreamHealth &h)
  {
    return h.consecutive_failures < kUnhealthyConsecutiveFailures && h.error_ratio < kUnhealthyErrorRatio;
  }

  const std::string name_;
  const sockaddr_storage address_;
  const socklen_t address_len_;
  const std::string host_;
  const std::size_t max_idle_;
  std::vector<UpConn *> idle_;
  UpstreamHealth health_;
  // health_ again, for other threads (written by the owner, relaxed)
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint32_t> consecutive_failures_{0};
  std::atomic<double> error_ratio_{0};
  std::atomic<double> latency_ewma_ms_{0};
};

}  // namespace riskgate::proxy
