// Names of the kernel's reasons (abi.h RG_REASONS): counters, metrics labels, events, the CLI.
#pragma once

#include <cstdint>
#include <string>

namespace riskgate {

// "xdp_drop_ip", ...; "reason_<n>" for a value this binary does not know (a newer kernel object).
std::string reason_name(std::uint32_t reason);

}  // namespace riskgate
