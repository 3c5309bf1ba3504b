// The one duration syntax of policies, settings files and riskgatectl: whole numbers with a unit,
// largest unit first, each unit at most once: 500ms, 90s, 10m, 1h30m, 2d. A bare number is refused
// everywhere: is "10" seconds or minutes?
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <riskgate/common/result.h>

namespace riskgate {

// Milliseconds, or why `text` is not a duration ("'90' is not a duration: ..."), ready to follow a
// caller's context ("block.ttl: ", "--ttl 90: ").
Result<std::uint64_t> parse_duration_ms(std::string_view text);

// What parse_duration_ms reads back to `ms`, largest unit first: "1h30m", "2d", "1s500ms", "0s". With
// `units`, only that many units from the largest one present, the rest cut off: a countdown reads
// "9m58s", not "9m58s412ms".
std::string format_duration_ms(std::uint64_t ms, std::size_t units = std::numeric_limits<std::size_t>::max());

}  // namespace riskgate
