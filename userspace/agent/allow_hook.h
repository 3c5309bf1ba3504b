// The request hook riskgated runs until the risk engine is wired in: every request is forwarded and
// gets a decision id, so the proxy's answers and the upstream can already be correlated.
#pragma once

#include <atomic>
#include <cstdint>

#include <riskgate/request.h>

namespace riskgate::agent {

class AllowHook final : public RequestHook {
 public:
  AllowHook();
  HookVerdict on_request(const RequestView &request) override;
  void on_complete(const RequestView &request, const ExchangeResult &result) override;

 private:
  // Decision ids: start time in the high bits so a restart never repeats an id, then a per-worker
  // counter (no shared cache line on the hot path).
  std::uint64_t epoch_;
};

}  // namespace riskgate::agent
