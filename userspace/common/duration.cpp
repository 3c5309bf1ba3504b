#include <riskgate/common/duration.h>

#include <array>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace riskgate {

namespace {

struct Unit {
  std::string_view name;
  std::uint64_t ms;
};

// Largest first: the order a duration must be written in.
constexpr std::array<Unit, 5> kUnits{
    {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}}};

constexpr std::string_view kExample =
    "a whole number with a unit (ms, s, m, h, d), e.g. 500ms, 90s, 1h30m, 2d";

Error refuse(std::string_view text, std::string_view why)
{
  return make_error(fmt::format("'{}' is not a duration: {}", text, why));
}

std::size_t unit_index(std::string_view name)
{
  for (std::size_t i = 0; i < kUnits.size(); ++i)
    if (kUnits[i].name == name)
      return i;
  return kUnits.size();
}

}  // namespace

Result<std::uint64_t> parse_duration_ms(std::string_view text)
{
  if (text.empty())
    return refuse(text, fmt::format("it is empty; write {}", kExample));
  std::uint64_t total = 0;
  std::size_t next_unit = 0;  // units must come in kUnits order, each once
  std::size_t i = 0;
  while (i < text.size()) {
    std::uint64_t number = 0;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), number);
    if (ec == std::errc::result_out_of_range)
      return refuse(text, "too large");
    if (ec != std::errc{})
      return refuse(text, fmt::format("expected {}", kExample));
    const std::string_view digits = text.substr(i, static_cast<std::size_t>(end - (text.data() + i)));
    i += digits.size();
    std::size_t unit_end = i;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) ++unit_end;
    const std::string_view unit = text.substr(i, unit_end - i);
    if (unit.empty() && i == text.size())
      return refuse(text, fmt::format("{} has no unit; write {}s, {}m, {}h or {}d", digits, digits, digits,
                                      digits, digits));
    if (unit.empty())
      return refuse(text, text[i] == '.' ? std::string("whole numbers only (1h30m, not 1.5h)")
                                         : fmt::format("expected {}", kExample));
    const std::size_t index = unit_index(unit);
    if (index == kUnits.size())
      return refuse(text, fmt::format("unknown unit '{}' (units: ms, s, m, h, d)", unit));
    if (index < next_unit)
      return refuse(text, "units go from the largest to the smallest, each once (1h30m, not 30m1h)");
    const std::uint64_t scale = kUnits[index].ms;
    if (number > (std::numeric_limits<std::uint64_t>::max() - total) / scale)
      return refuse(text, "too large");
    total += number * scale;
    next_unit = index + 1;
    i = unit_end;
  }
  return total;
}

std::string format_duration_ms(std::uint64_t ms, std::size_t units)
{
  std::string out;
  std::size_t written_from = kUnits.size();  // index of the largest unit present
  for (std::size_t i = 0; i < kUnits.size(); ++i) {
    const std::uint64_t count = ms / kUnits[i].ms;
    if (count == 0)
      continue;
    if (written_from == kUnits.size())
      written_from = i;
    if (i - written_from >= units)
      break;
    out += fmt::format("{}{}", count, kUnits[i].name);
    ms -= count * kUnits[i].ms;
  }
  return out.empty() ? "0s" : out;
}

}  // namespace riskgate
