#include <riskgate/common/errors.h>

#include <cstring>

namespace riskgate {

std::string errno_text(int err)
{
  return std::strerror(err < 0 ? -err : err);
}

}  // namespace riskgate
