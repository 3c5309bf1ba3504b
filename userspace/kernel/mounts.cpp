#include <riskgate/kernel/mounts.h>
#include <riskgate/common/errors.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <linux/magic.h>

namespace riskgate::kernel {

Result<std::string> cgroup2_root()
{
  std::ifstream mounts("/proc/mounts");
  if (!mounts)
    return make_error(fmt::format("open /proc/mounts: {}", errno_text()));
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mount_point, type;
    fields >> device >> mount_point >> type;
    if (type == "cgroup2")
      return mount_point;
  }
  return make_error(
      "no cgroup2 filesystem in /proc/mounts: riskgate needs cgroup v2 (see docs/operations.md)");
}

namespace {

bool lists_pid(const std::filesystem::path &cgroup_dir, long pid)
{
  std::ifstream procs(cgroup_dir / "cgroup.procs");
  for (long listed = 0; procs >> listed;)
    if (listed == pid)
      return true;
  return false;
}

}  // namespace

Result<std::string> own_cgroup_dir()
{
  auto root = cgroup2_root();
  if (!root)
    return root;
  std::ifstream self("/proc/self/cgroup");
  std::string line, relative;
  bool found = false;
  while (!found && std::getline(self, line))
    if (line.rfind("0::", 0) == 0) {
      relative = line.substr(3);
      found = true;
    }
  if (!found)
    return make_error("/proc/self/cgroup has no cgroup v2 (0::) line");
  const std::string dir = relative.size() > 1 ? *root + relative : *root;
  const long pid = static_cast<long>(::getpid());
  if (lists_pid(dir, pid))
    return dir;
  // In a private cgroup namespace (a Kubernetes pod with the host's hierarchy mounted, see
  // docs/operations.md) /proc/self/cgroup is relative to the namespace ("0::/"), not to the mounted
  // root. cgroup.procs lists only pids visible in our pid namespace, so the one cgroup that lists
  // our pid is ours.
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(*root, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec) && lists_pid(it->path(), pid))
      return it->path().string();
  return make_error(
      fmt::format("no cgroup under {} lists this process (/proc/self/cgroup says '{}', relative to "
                  "a cgroup namespace?)",
                  *root, relative));
}

Result<std::uint64_t> cgroup_id(const std::string &cgroup_dir)
{
  struct stat st {};
  if (::stat(cgroup_dir.c_str(), &st) != 0)
    return make_error(fmt::format("stat {}: {}", cgroup_dir, errno_text()));
  return static_cast<std::uint64_t>(st.st_ino);
}

Result<void> ensure_bpffs(const std::string &dir)
{
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == BPF_FS_MAGIC)
    return {};
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error(fmt::format("mkdir {}: {}", dir, errno_text()));
  if (::mount("bpf", dir.c_str(), "bpf", 0, "mode=0700") != 0)
    return make_error(fmt::format("mount bpffs on {}: {}", dir, errno_text()));
  return {};
}

}  // namespace riskgate::kernel
