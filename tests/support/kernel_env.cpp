#include "support/kernel_env.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/mounts.h>
#include <riskgate/common/errors.h>

namespace riskgate::test {

bool in_ci()
{
  const char *ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::optional<std::string> kernel_prerequisites_missing()
{
  if (::geteuid() != 0)
    return "not running as root";
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    return "no kernel BTF at /sys/kernel/btf/vmlinux";
  if (auto bpffs = kernel::ensure_bpffs(); !bpffs)
    return bpffs.error();
  if (auto cg = kernel::cgroup2_root(); !cg)
    return cg.error();
  return std::nullopt;
}

std::string unique_name(const std::string &prefix)
{
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}-{}-{}", prefix, ::getpid(), counter++);
}

WorkDir::WorkDir(const std::string &prefix) : path("/tmp/" + unique_name(prefix))
{
  std::filesystem::create_directories(path + "/policies");
}

WorkDir::~WorkDir()
{
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

TempPinDir::TempPinDir() : path_("/sys/fs/bpf/" + unique_name("rgt-pin"))
{
  if (::mkdir(path_.c_str(), 0700) != 0)
    throw std::runtime_error(fmt::format("mkdir {}: {}", path_, errno_text()));
}

TempPinDir::~TempPinDir()
{
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ScopedCgroup::ScopedCgroup(const std::string &prefix)
{
  auto root = kernel::cgroup2_root();
  if (!root)
    throw std::runtime_error(root.error());
  path_ = *root + "/" + unique_name(prefix);
  if (::mkdir(path_.c_str(), 0755) != 0)
    throw std::runtime_error(fmt::format("mkdir {}: {}", path_, errno_text()));
}

ScopedCgroup::ScopedCgroup(const ScopedCgroup &parent, const std::string &prefix)
    : path_(parent.path() + "/" + unique_name(prefix))
{
  if (::mkdir(path_.c_str(), 0755) != 0)
    throw std::runtime_error(fmt::format("mkdir {}: {}", path_, errno_text()));
}

ScopedCgroup::~ScopedCgroup()
{
  // cgroup.kill ends every process inside; rmdir succeeds once they are gone.
  std::ofstream(path_ + "/cgroup.kill") << "1";
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

unsigned long long ScopedCgroup::id() const
{
  auto id = kernel::cgroup_id(path_);
  if (!id)
    throw std::runtime_error(id.error());
  return *id;
}

void ScopedCgroup::add_pid(int pid) const
{
  std::ofstream procs(path_ + "/cgroup.procs");
  procs << pid;
  procs.flush();
  if (!procs)
    throw std::runtime_error(fmt::format("add pid {} to {}: write failed", pid, path_));
}

std::string GovernedWorkloads::selector(const ScopedCgroup &cgroup)
{
  return cgroup.path().substr(kernel::cgroup2_root().value().size());
}

std::unique_ptr<kernel::Datapath> GovernedWorkloads::start_datapath() const
{
  kernel::DatapathConfig config;
  config.pin_root = pins.path();
  config.cgroup = parent.path();
  auto datapath = kernel::Datapath::start(config);
  if (!datapath)
    throw std::runtime_error("start the datapath: " + datapath.error());
  return std::move(*datapath);
}

}  // namespace riskgate::test
