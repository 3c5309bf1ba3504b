// The kernel half of riskgated's startup: attach the datapath where the options say, report how
// (XDP native or generic fallback, re-adopted pins), and keep kernel state tidy while running.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <riskgate/result.h>

#include "agent/agent.h"
#include "kernel/datapath.h"

namespace riskgate::agent {

// Loads and attaches the datapath: cgroup programs on --cgroup (default: the cgroup v2 root),
// XDP on each --xdp interface, pins under --pin-root. Prints what it did to stderr.
Result<std::unique_ptr<kernel::Datapath>> start_datapath(const Options &options);

// Housekeeping the kernel cannot do itself, every 250 ms on its own thread while alive: removes
// expired block entries (already ignored by the kernel) and releases sockets whose sticky sk_msg
// drop outlived their block.
class DatapathMaintenance {
 public:
  explicit DatapathMaintenance(kernel::Datapath &datapath);
  ~DatapathMaintenance();
  DatapathMaintenance(const DatapathMaintenance &) = delete;
  DatapathMaintenance &operator=(const DatapathMaintenance &) = delete;

 private:
  kernel::Datapath &datapath_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Says loudly that nothing is enforced in the kernel (--no-kernel).
void warn_no_kernel();

}  // namespace riskgate::agent
