#include <riskgate/kernel/inventory.h>
#include <riskgate/common/errors.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace riskgate::kernel {

namespace {

struct OwnedFd {
  int fd;
  ~OwnedFd()
  {
    if (fd >= 0)
      ::close(fd);
  }
};

const char *or_unknown(const char *text)
{
  return text ? text : "unknown";
}

}  // namespace

Result<std::vector<LinkInventory>> pinned_links(const std::string &pin_root)
{
  namespace fs = std::filesystem;
  std::vector<LinkInventory> out;
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(pin_root + "/links", ec)) {
    LinkInventory item;
    item.pin = entry.path().filename().string();
    OwnedFd link{::bpf_obj_get(entry.path().c_str())};
    if (link.fd < 0)
      return make_error(fmt::format("open link pin {}: {}", entry.path().string(), errno_text()));
    bpf_link_info info{};
    std::uint32_t len = sizeof info;
    if (::bpf_obj_get_info_by_fd(link.fd, &info, &len) != 0)
      return make_error(fmt::format("link info {}: {}", entry.path().string(), errno_text()));
    item.link_id = info.id;
    item.link_type = or_unknown(libbpf_bpf_link_type_str(static_cast<bpf_link_type>(info.type)));
    item.prog_id = info.prog_id;
    if (info.type == BPF_LINK_TYPE_CGROUP) {
      item.attach_type =
          or_unknown(libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(info.cgroup.attach_type)));
      item.attached_to = fmt::format("cgroup {}", info.cgroup.cgroup_id);
    } else if (info.type == BPF_LINK_TYPE_XDP) {
      char name[IF_NAMESIZE] = {};
      item.attach_type = "xdp";
      item.attached_to = fmt::format("ifindex {} ({})", info.xdp.ifindex,
                                     if_indextoname(info.xdp.ifindex, name) ? name : "gone");
    }
    OwnedFd prog{::bpf_prog_get_fd_by_id(info.prog_id)};
    if (prog.fd >= 0) {
      bpf_prog_info pinfo{};
      std::uint32_t plen = sizeof pinfo;
      if (::bpf_obj_get_info_by_fd(prog.fd, &pinfo, &plen) == 0) {
        item.prog_name = pinfo.name;
        item.verified_insns = pinfo.verified_insns;
        item.xlated_insns = pinfo.xlated_prog_len / 8;
      }
    }
    out.push_back(std::move(item));
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return make_error(fmt::format("list {}/links: {}", pin_root, ec.message()));
  return out;
}

Result<std::vector<MapInventory>> map_inventory(const PinnedMaps &maps)
{
  std::vector<MapInventory> out;
  for (std::size_t i = 0; i < kMapCount; ++i) {
    const int fd = maps.fd(static_cast<MapId>(i));
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (::bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
      return make_error(fmt::format("map info {}: {}", map_name(static_cast<MapId>(i)), errno_text()));
    MapInventory item;
    item.name = map_name(static_cast<MapId>(i));
    item.type = or_unknown(libbpf_bpf_map_type_str(static_cast<bpf_map_type>(info.type)));
    item.id = info.id;
    item.max_entries = info.max_entries;
    const bool countable = info.type == BPF_MAP_TYPE_HASH || info.type == BPF_MAP_TYPE_LPM_TRIE ||
                           info.type == BPF_MAP_TYPE_LRU_HASH || info.type == BPF_MAP_TYPE_SOCKHASH;
    if (countable) {
      std::vector<unsigned char> key(info.key_size), next(info.key_size);
      std::uint64_t n = 0;
      const void *prev = nullptr;
      while (::bpf_map_get_next_key(fd, prev, next.data()) == 0 && n <= info.max_entries) {
        ++n;
        key = next;
        prev = key.data();
      }
      item.entries = n;
    }
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace riskgate::kernel
