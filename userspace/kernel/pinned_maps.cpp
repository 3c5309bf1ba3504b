#include <riskgate/kernel/pinned_maps.h>

#include <unistd.h>

#include <cerrno>

#include <bpf/bpf.h>
#include <fmt/format.h>

#include <riskgate/common/errors.h>

namespace riskgate::kernel {

namespace {

constexpr const char *kMapNames[kMapCount] = {
    "rg_counters", "rg_events",   "rg_ipcache", "rg_blk_ip",    "rg_blk_id",   "rg_blk_pair",
    "rg_blk_port", "rg_blk_conn", "rg_grace",   "rg_hint_id",   "rg_hint_ip",  "rg_cgroups",
    "rg_id_names", "rg_trusted",  "rg_l7_cfg",  "rg_l7_dst",    "rg_xdp_cfg",  "rg_syn",
    "rg_sock_stg", "rg_orig_stg", "rg_conns",   "rg_endpoints", "rg_orig_dst", "rg_sockhash",
};

}  // namespace

const char *map_name(MapId id)
{
  return kMapNames[static_cast<std::size_t>(id)];
}

Result<PinnedMaps> PinnedMaps::open(const std::string &pin_root)
{
  PinnedMaps maps;
  for (std::size_t i = 0; i < kMapCount; ++i) {
    const std::string path = pin_root + "/" + kMapNames[i];
    const int fd = ::bpf_obj_get(path.c_str());
    if (fd < 0)
      return make_error(fmt::format("open pinned map {}: {} (is riskgated installed with --pin-root {}?)",
                                    path, errno_text(errno), pin_root));
    maps.fds_[i] = fd;
  }
  return maps;
}

PinnedMaps::PinnedMaps(PinnedMaps &&other) noexcept : fds_(other.fds_)
{
  other.fds_.fill(-1);
}

PinnedMaps &PinnedMaps::operator=(PinnedMaps &&other) noexcept
{
  if (this != &other) {
    close_all();
    fds_ = other.fds_;
    other.fds_.fill(-1);
  }
  return *this;
}

PinnedMaps::~PinnedMaps()
{
  close_all();
}

void PinnedMaps::close_all()
{
  for (int &fd : fds_) {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
}

}  // namespace riskgate::kernel
