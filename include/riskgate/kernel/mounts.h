// Where the kernel's filesystems are on this machine: the cgroup v2 hierarchy is found in
// /proc/mounts (it may be /sys/fs/cgroup or /sys/fs/cgroup/unified), never assumed.
#pragma once

#include <cstdint>
#include <string>

#include <riskgate/common/paths.h>
#include <riskgate/common/result.h>

namespace riskgate::kernel {

// Mount point of the cgroup2 filesystem.
Result<std::string> cgroup2_root();

// The cgroup v2 directory of the calling process: cgroup2 root + its "0::" line in /proc/self/cgroup,
// or, when that directory does not list the process (a private cgroup namespace, as in a Kubernetes
// pod), the cgroup under the root whose cgroup.procs does.
Result<std::string> own_cgroup_dir();

// cgroup id of a cgroup v2 directory (its inode number, what bpf_get_current_cgroup_id returns).
Result<std::uint64_t> cgroup_id(const std::string &cgroup_dir);

// Makes sure `dir` is on a bpffs, mounting one there when it is not (needs CAP_SYS_ADMIN).
Result<void> ensure_bpffs(const std::string &dir = paths::kBpffs);

}  // namespace riskgate::kernel
