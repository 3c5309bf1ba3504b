#include <riskgate/policy/params.h>

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include <riskgate/common/duration.h>

namespace riskgate::policy {

namespace {

constexpr double kDay = 86400000.0;

constexpr ParamSpec kRoaming[] = {
    {"window", ParamKind::duration, 1000, 7 * kDay, "10m"},
    {"maxAddresses", ParamKind::integer, 1, 4, "3"},
};
constexpr ParamSpec kRate[] = {
    {"warmup", ParamKind::duration, 0, 30 * kDay, "2m"},
    {"halfLife", ParamKind::duration, 1000, kDay, "10m"},
    {"sigma", ParamKind::number, 1, 100, "6"},
    {"minRate", ParamKind::number, 0, 1e6, "5"},
};
constexpr ParamSpec kNovelty[] = {
    {"learn", ParamKind::duration, 0, 30 * kDay, "10m"},
    {"scanWindow", ParamKind::duration, 1000, kDay, "1m"},
    {"scanBurst", ParamKind::integer, 2, 1000, "10"},
    {"scanWeight", ParamKind::integer, 0, 100, "60"},
};
constexpr ParamSpec kFailures[] = {
    {"window", ParamKind::duration, 1000, kDay, "1m"},
    {"ratio", ParamKind::number, 0.01, 1, "0.5"},
    {"minRequests", ParamKind::integer, 1, 1e6, "10"},
};
constexpr ParamSpec kPayload[] = {
    {"warmup", ParamKind::integer, 1, 1e6, "50"},
    {"sigma", ParamKind::number, 1, 100, "6"},
};
constexpr ParamSpec kHealth[] = {
    {"errorRatio", ParamKind::number, 0, 1, "0.25"},
    {"latency", ParamKind::duration, 1, 600000, "1s"},
};

constexpr SignalSpec kSignals[] = {
    {"credential", 40, {}},    {"binding", 100, {}},      {"roaming", 60, kRoaming},
    {"rate", 30, kRate},       {"novelty", 25, kNovelty}, {"failures", 30, kFailures},
    {"payload", 15, kPayload}, {"health", 10, kHealth},   {"watchlist", 20, {}},
};

}  // namespace

std::optional<double> parse_number(std::string_view text)
{
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::span<const SignalSpec> signal_specs()
{
  return kSignals;
}

const SignalSpec *find_signal(std::string_view name)
{
  for (const auto &signal : kSignals)
    if (name == signal.name)
      return &signal;
  return nullptr;
}

const ParamSpec *find_param(const SignalSpec &signal, std::string_view key)
{
  for (const auto &param : signal.params)
    if (key == param.key)
      return &param;
  return nullptr;
}

std::optional<std::string> check_param(const ParamSpec &spec, std::string_view value)
{
  double number = 0;
  switch (spec.kind) {
    case ParamKind::duration: {
      const auto ms = parse_duration_ms(value);
      if (!ms)
        return ms.error();
      number = static_cast<double>(*ms);
      if (number < spec.min || number > spec.max)
        return fmt::format("{} must be between {} and {}", spec.key,
                           format_duration_ms(static_cast<std::uint64_t>(spec.min)),
                           format_duration_ms(static_cast<std::uint64_t>(spec.max)));
      return std::nullopt;
    }
    case ParamKind::number:
    case ParamKind::integer: {
      const auto parsed = parse_number(value);
      if (!parsed)
        return fmt::format("'{}' is not a number", value);
      number = *parsed;
      if (spec.kind == ParamKind::integer && number != std::floor(number))
        return fmt::format("{} must be a whole number, not {}", spec.key, value);
      if (number < spec.min || number > spec.max)
        return fmt::format("{} must be between {} and {}", spec.key, spec.min, spec.max);
      return std::nullopt;
    }
  }
  return std::nullopt;
}

double param_value(const ParamSpec &spec, std::string_view value)
{
  if (spec.kind != ParamKind::duration)
    return parse_number(value).value_or(0);
  const auto ms = parse_duration_ms(value);
  return ms ? static_cast<double>(*ms) : 0;
}

}  // namespace riskgate::policy
