// Durations and times as operators type and read them.
#include <ctime>

#include <fmt/format.h>

#include "ctl.h"

namespace riskgate::ctl {

std::uint64_t duration_option_ms(std::string_view option, const std::string &text)
{
  const auto ms = parse_duration_ms(text);
  if (!ms)
    usage_error(fmt::format("{} {}: {}", option, text, ms.error()));
  return *ms;
}

std::string format_elapsed_ms(std::uint64_t ms)
{
  return format_duration_ms(ms, 2);
}

std::string format_unix_ns(std::uint64_t unix_ns)
{
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000ull);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, unix_ns / 1'000'000 % 1000);
}

}  // namespace riskgate::ctl
