// Files compiled into the binary (cmake/embed.cmake).
#pragma once

#include <string_view>

namespace riskgate::embedded {
extern const std::string_view default_yaml;  // policies/default.yaml
}
