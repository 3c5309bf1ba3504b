#include <riskgate/common/reasons.h>

#include <fmt/format.h>

#include <riskgate/abi.h>

namespace riskgate {

std::string reason_name(std::uint32_t reason)
{
  switch (reason) {
#define RG_REASON_CASE(name, value, text) \
  case RG_R_##name: return #text;
    RG_REASONS(RG_REASON_CASE)
#undef RG_REASON_CASE
    default: return fmt::format("reason_{}", reason);
  }
}

}  // namespace riskgate
