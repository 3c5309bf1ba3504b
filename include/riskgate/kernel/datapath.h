// The loader/control plane of riskgate's BPF datapath (like Katran's KatranLb): opens the
// skeletons, sizes the maps, loads them (re-adopting maps already pinned, so a restart changes no
// map contents), attaches with bpf_links to a cgroup and XDP interfaces, pins maps and links under
// the pin root, and uninstalls. Map access goes through PinnedMaps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <riskgate/common/paths.h>
#include <riskgate/common/result.h>

#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::kernel {

struct DatapathConfig {
  std::string pin_root = paths::kPinRoot;
  // cgroup v2 directory for connect4/6, sendmsg4/6, sockops and getsockopt; empty = no cgroup
  // programs. The caller chooses; riskgated defaults to the cgroup v2 root (the whole node).
  std::string cgroup;
  // Where the proxy runs when that is outside `cgroup`: getsockopt(SO_ORIGINAL_DST) is attached
  // there too, and the cgroup is exempt from redirects and denies.
  std::string proxy_cgroup;
  std::vector<std::string> xdp_interfaces;
  bool xdp_generic = false;             // skip the native attempt
  std::uint32_t block_entries = 16384;  // per block map
  std::uint32_t ipcache_entries = 16384;
  std::uint32_t identity_entries = 16384;  // cgroup and name tables
  std::uint32_t conn_entries = 65536;      // connection, endpoint, original-destination tables, sockhash
  std::uint32_t ringbuf_bytes = 256 * 1024;
};

struct XdpAttachment {
  std::string interface;
  bool native = false;
  std::string fallback_reason;  // why native failed, when generic
};

struct ProgramInfo {
  std::string name;
  std::uint32_t verified_insns = 0;  // what the verifier walked
  std::uint32_t xlated_insns = 0;    // program size after verification
};

class Datapath {
 public:
  // Loads and attaches everything `config` names, re-adopting pinned maps and links.
  static Result<std::unique_ptr<Datapath>> start(const DatapathConfig &config);
  // Loads every program through the verifier without attaching or pinning (verifier checks).
  static Result<std::vector<ProgramInfo>> verify_all();
  // Removes every link pin (detaching the programs) and map pin under `pin_root`; returns count.
  static Result<std::size_t> uninstall(const std::string &pin_root);

  ~Datapath();
  Datapath(const Datapath &) = delete;
  Datapath &operator=(const Datapath &) = delete;

  const DatapathConfig &config() const { return config_; }
  const std::vector<XdpAttachment> &xdp() const { return xdp_; }
  std::vector<ProgramInfo> programs() const;
  // fd of a loaded program by name ("rg_xdp_gate", ...), for BPF_PROG_TEST_RUN; -1 if unknown.
  int program_fd(const std::string &name) const;
  bool adopted_maps() const { return adopted_maps_; }  // maps existed before start
  std::size_t adopted_links() const { return adopted_links_; }
  PinnedMaps &maps() { return maps_; }

 private:
  struct Objects;
  Datapath(DatapathConfig config, PinnedMaps maps, std::unique_ptr<Objects> objects);
  static Result<std::unique_ptr<Objects>> open_all();
  // Loads every object; with a config, maps are sized and pinned (or re-adopted) first.
  static Result<void> load_objects(Objects &objects, const DatapathConfig *config);
  Result<void> attach();
  Result<void> attach_sk_msg();
  // The cgroup programs on `dir` (all, or only getsockopt), their link pins named with `suffix`.
  Result<void> attach_cgroup(const std::string &dir, const std::string &suffix, bool all_programs);
  Result<void> attach_xdp();
  std::string link_pin(const std::string &name) const;  // under <pin_root>/links/
  // Counts an adopted link; an error names `what` was being attached.
  Result<void> count_link(Result<bool> adopted, const std::string &what);

  DatapathConfig config_;
  PinnedMaps maps_;
  std::unique_ptr<Objects> objects_;
  std::vector<XdpAttachment> xdp_;
  bool adopted_maps_ = false;
  std::size_t adopted_links_ = 0;
};

}  // namespace riskgate::kernel
