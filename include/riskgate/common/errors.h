// The one errno-to-text helper, so every error message reads the same ("open x: No such file").
#pragma once

#include <cerrno>
#include <string>

namespace riskgate {

// strerror of `err`; a negative value (libbpf's and io_uring's -errno) reads like its positive one.
std::string errno_text(int err = errno);

}  // namespace riskgate
