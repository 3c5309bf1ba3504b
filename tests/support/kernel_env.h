// What kernel tests need from the machine, and scoped objects they create (each with a unique name,
// removed on destruction even when the test fails).
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace riskgate::kernel {
class Datapath;
}

namespace riskgate::test {

bool in_ci();

// nullopt when root, BTF, bpffs (mounted on demand) and cgroup v2 are all available; otherwise why not.
std::optional<std::string> kernel_prerequisites_missing();

// "<prefix>-<pid>-<n>", unique per process and call. Interface names must stay under 16 bytes: keep
// prefixes short and starting with "rgt" (scripts/test checks nothing named rgt* is left behind).
std::string unique_name(const std::string &prefix);

// A directory of a test's own, /tmp/<prefix>-<unique>, with an empty policies/ inside; removed with
// everything written there on destruction, also when the test fails. Declare it before the
// processes that write into it, so they stop first.
struct WorkDir {
  explicit WorkDir(const std::string &prefix);
  ~WorkDir();
  WorkDir(const WorkDir &) = delete;
  WorkDir &operator=(const WorkDir &) = delete;
  const std::string path;
};

// A bpffs directory /sys/fs/bpf/<unique> for a test's pins; removed recursively on destruction.
class TempPinDir {
 public:
  TempPinDir();
  ~TempPinDir();
  TempPinDir(const TempPinDir &) = delete;
  TempPinDir &operator=(const TempPinDir &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// A child cgroup under the cgroup v2 root, <root>/<unique>; on destruction its processes are killed
// and the cgroup removed.
class ScopedCgroup {
 public:
  explicit ScopedCgroup(const std::string &prefix = "rgt-cg");
  // A child of `parent` (programs attached to the parent govern it); destroy it before the parent.
  ScopedCgroup(const ScopedCgroup &parent, const std::string &prefix);
  ~ScopedCgroup();
  ScopedCgroup(const ScopedCgroup &) = delete;
  ScopedCgroup &operator=(const ScopedCgroup &) = delete;
  const std::string &path() const { return path_; }  // absolute filesystem path
  unsigned long long id() const;                     // cgroup id (inode number)
  void add_pid(int pid) const;

 private:
  std::string path_;
};

// What riskgated governs in a test: a pin directory and a parent cgroup holding two workload
// cgroups, `client` and `server`.
struct GovernedWorkloads {
  TempPinDir pins;
  ScopedCgroup parent{"rgt-cg"};
  ScopedCgroup client{parent, "client"};
  ScopedCgroup server{parent, "server"};
  // A cgroup's path relative to the cgroup v2 root: what an Identity's cgroup selector matches.
  static std::string selector(const ScopedCgroup &cgroup);
  // The datapath attached to `parent`, pinned under `pins`; throws with the loader's error.
  std::unique_ptr<kernel::Datapath> start_datapath() const;
};

}  // namespace riskgate::test
