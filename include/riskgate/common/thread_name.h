// Names the calling thread as top -H, ps -L, perf and /proc/<pid>/task/*/comm show it, so an
// operator can tell riskgated's proxy workers from its decision log writer or its housekeeping.
// The kernel keeps 15 characters; threads started later inherit the name until they set their own.
#pragma once

#include <pthread.h>

#include <string>

namespace riskgate {

inline void name_this_thread(const std::string &name)
{
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace riskgate
