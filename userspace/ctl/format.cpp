// Durations and times as operators type and read them.
#include <ctime>

#include <fmt/format.h>

#include "ctl.h"

namespace riskgate::ctl {

std::optional<std::uint64_t> parse_duration_ms(const std::string &text)
{
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12)
    return std::nullopt;
  const std::uint64_t value = std::stoull(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  if (unit == "ms")
    return value;
  if (unit.empty() || unit == "s")
    return value * 1000;
  if (unit == "m")
    return value * 60'000;
  if (unit == "h")
    return value * 3'600'000;
  if (unit == "d")
    return value * 86'400'000;
  return std::nullopt;
}

std::string format_duration_ms(std::uint64_t ms)
{
  const std::uint64_t s = ms / 1000;
  if (s < 60)
    return ms < 10'000 && ms % 1000 ? fmt::format("{}.{}s", s, ms % 1000 / 100) : fmt::format("{}s", s);
  if (s < 3600)
    return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 86400)
    return fmt::format("{}h{}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{}h", s / 86400, s % 86400 / 3600);
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
