#include "agent/allow_hook.h"

#include <ctime>

#include <fmt/format.h>

namespace riskgate::agent {

AllowHook::AllowHook()
{
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  epoch_ = (static_cast<std::uint64_t>(ts.tv_sec) & 0xffffffu) << 40;
}

HookVerdict AllowHook::on_request(const RequestView &request)
{
  thread_local std::uint32_t counter = 0;
  HookVerdict verdict;
  verdict.kind = HookVerdict::Kind::forward;
  verdict.decision_id = epoch_ | (static_cast<std::uint64_t>(request.worker & 0xff) << 32) | ++counter;
  return verdict;
}

void AllowHook::on_complete(const RequestView &, const ExchangeResult &) {}

}  // namespace riskgate::agent
