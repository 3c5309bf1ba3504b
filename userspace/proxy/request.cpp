#include <riskgate/request.h>

#include "proxy/http.h"

namespace riskgate {

std::optional<std::string_view> RequestView::header(std::string_view name) const
{
  for (const auto &h : headers)
    if (proxy::iequals(h.name, name))
      return h.value;
  return std::nullopt;
}

}  // namespace riskgate
