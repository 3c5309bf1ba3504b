// What riskgate has in the kernel, read from the pins alone (riskgatectl status): links with their
// programs and attach points, maps with their fill level.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <riskgate/common/result.h>

#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::kernel {

struct LinkInventory {
  std::string pin;  // file name under <pin root>/links
  std::uint32_t link_id = 0;
  std::string link_type;    // "cgroup", "xdp", ...
  std::string attach_type;  // "cgroup_inet4_connect", "xdp", ...
  std::string attached_to;  // "cgroup 1234" / "ifindex 7 (veth0)"
  std::uint32_t prog_id = 0;
  std::string prog_name;
  std::uint32_t verified_insns = 0;
  std::uint32_t xlated_insns = 0;
};

struct MapInventory {
  std::string name;
  std::string type;  // "hash", "lpm_trie", "percpu_array", ...
  std::uint32_t id = 0;
  std::uint32_t max_entries = 0;
  std::optional<std::uint64_t> entries;  // counted for hash-like maps; nullopt where it means nothing
};

Result<std::vector<LinkInventory>> pinned_links(const std::string &pin_root);
Result<std::vector<MapInventory>> map_inventory(const PinnedMaps &maps);

}  // namespace riskgate::kernel
