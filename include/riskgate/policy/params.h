// Value syntax shared by the policy loader (which validates with line/column) and the compiler (which
// converts values the loader already accepted): numbers, and the parameter schema of each signal.
// Durations are riskgate/common/duration.h.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace riskgate::policy {

std::optional<double> parse_number(std::string_view text);

enum class ParamKind { duration, number, integer };

struct ParamSpec {
  const char *key;
  ParamKind kind;
  double min;  // inclusive; durations in milliseconds
  double max;
  const char *default_value;
};

struct SignalSpec {
  const char *name;
  int default_weight;
  std::span<const ParamSpec> params;
};

std::span<const SignalSpec> signal_specs();
const SignalSpec *find_signal(std::string_view name);
const ParamSpec *find_param(const SignalSpec &signal, std::string_view key);

// Checks one parameter value against its spec; returns the problem, or nullopt when it is fine.
std::optional<std::string> check_param(const ParamSpec &spec, std::string_view value);
// The value as a number (durations in milliseconds). Only for values check_param accepted.
double param_value(const ParamSpec &spec, std::string_view value);

}  // namespace riskgate::policy
