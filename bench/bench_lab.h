// What the datapath benchmarks share (header-only: every bench/*.cpp is its own executable): a
// private cgroup tree (never the machine's root cgroup), processes forked into a cgroup and pinned
// to a CPU, and percentiles. Everything is removed on exit.
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <riskgate/kernel/mounts.h>
#include <riskgate/common/errors.h>

namespace riskgate::bench {

inline std::uint64_t now_ns()
{
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline void pin_to_cpu(int cpu)
{
  if (cpu < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu), &set);
  ::sched_setaffinity(0, sizeof(set), &set);
}

inline double percentile(std::vector<double> values, double p)
{
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1));
  return values[index];
}

// <cgroup2 root>/rgt-bench-<name>-<pid> with the given children; killed and removed on destruction.
class CgroupTree {
 public:
  CgroupTree(const std::string &name, const std::vector<std::string> &children)
  {
    auto base = kernel::cgroup2_root();
    if (!base)
      throw std::runtime_error(base.error());
    root_ = fmt::format("{}/rgt-bench-{}-{}", *base, name, ::getpid());
    dirs_.push_back(root_);
    for (const auto &child : children) dirs_.push_back(root_ + "/" + child);
    for (const auto &dir : dirs_)
      if (::mkdir(dir.c_str(), 0755) != 0)
        throw std::runtime_error(fmt::format("mkdir {}: {}", dir, errno_text()));
  }
  ~CgroupTree()
  {
    std::ofstream(root_ + "/cgroup.kill") << "1";
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it)
      for (int attempt = 0; attempt < 200 && ::rmdir(it->c_str()) != 0 && errno != ENOENT; ++attempt)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CgroupTree(const CgroupTree &) = delete;
  CgroupTree &operator=(const CgroupTree &) = delete;
  const std::string &root() const { return root_; }
  std::string path(const std::string &child) const { return root_ + "/" + child; }
  std::uint64_t id(const std::string &child) const { return *kernel::cgroup_id(path(child)); }

 private:
  std::string root_;
  std::vector<std::string> dirs_;  // creation order
};

// Forks `body` into `cgroup` (absolute path), pinned to `cpu` (-1: any); SIGKILLed on destruction.
class Child {
 public:
  Child(const std::string &cgroup, int cpu, const std::function<int()> &body)
  {
    pid_ = ::fork();
    if (pid_ < 0)
      throw std::runtime_error(fmt::format("fork: {}", errno_text()));
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::ofstream(cgroup + "/cgroup.procs") << ::getpid();
      pin_to_cpu(cpu);
      ::_exit(body());
    }
  }
  ~Child()
  {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;
  int wait()
  {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace riskgate::bench
