#include <riskgate/common/paths.h>
#include <riskgate/kernel/datapath.h>
#include <riskgate/common/errors.h>

#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/magic.h>

#include <riskgate/kernel/mounts.h>
#include "msg_gate.skel.h"
#include "sock_gate.skel.h"
#include "sockops_tag.skel.h"
#include "xdp_gate.skel.h"

namespace riskgate::kernel {

namespace fs = std::filesystem;

struct Datapath::Objects {
  xdp_gate *xdp = nullptr;
  sock_gate *sock = nullptr;
  sockops_tag *sockops = nullptr;
  msg_gate *msg = nullptr;

  ~Objects()
  {
    msg_gate__destroy(msg);
    sockops_tag__destroy(sockops);
    sock_gate__destroy(sock);
    xdp_gate__destroy(xdp);
  }
  std::vector<bpf_object *> all() const { return {xdp->obj, sock->obj, sockops->obj, msg->obj}; }
};

namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd()
  {
    if (fd_ >= 0)
      ::close(fd_);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::uint32_t max_entries_for(const DatapathConfig &config, const std::string &name)
{
  if (name.rfind("rg_blk_", 0) == 0)
    return config.block_entries;
  if (name == "rg_ipcache")
    return config.ipcache_entries;
  if (name == "rg_cgroups" || name == "rg_id_names")
    return config.identity_entries;
  if (name == "rg_conns" || name == "rg_endpoints" || name == "rg_orig_dst" || name == "rg_sockhash")
    return config.conn_entries;
  if (name == "rg_events")
    return config.ringbuf_bytes;
  return 0;  // keep the size compiled into the object
}

// A pinned map is re-adopted only when its layout is what this binary expects; otherwise say which
// map differs and how, instead of libbpf's generic refusal.
Result<void> check_pinned_layout(const bpf_map *map, const std::string &pin)
{
  Fd pinned(::bpf_obj_get(pin.c_str()));
  if (pinned.get() < 0)
    return {};  // not pinned yet: it will be created
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(pinned.get(), &info, &len) != 0)
    return make_error(fmt::format("inspect pinned map {}: {}", pin, errno_text(errno)));
  const auto want = fmt::format("type {} key {} value {} entries {} flags {:#x}",
                                static_cast<int>(bpf_map__type(map)), bpf_map__key_size(map),
                                bpf_map__value_size(map), bpf_map__max_entries(map), bpf_map__map_flags(map));
  const auto have = fmt::format("type {} key {} value {} entries {} flags {:#x}", info.type, info.key_size,
                                info.value_size, info.max_entries, info.map_flags);
  if (want != have)
    return make_error(
        fmt::format("pinned map {} has {} but this riskgate needs {} (a different version or map "
                    "sizes made it): keep the previous binary and settings, or `riskgated --uninstall "
                    "--pin-root {}` first (that drops every block)",
                    pin, have, want, fs::path(pin).parent_path().string()));
  return {};
}

// Sizes and pins (or re-adopts, when the pin exists) every non-internal map of `obj`.
Result<void> prepare_maps(bpf_object *obj, const DatapathConfig &config)
{
  bpf_map *map = nullptr;
  bpf_object__for_each_map(map, obj)
  {
    if (bpf_map__is_internal(map))
      continue;
    const std::string name = bpf_map__name(map);
    if (auto entries = max_entries_for(config, name); entries != 0)
      if (int err = bpf_map__set_max_entries(map, entries); err != 0)
        return make_error(fmt::format("size {} to {}: {}", name, entries, errno_text(err)));
    const std::string pin = config.pin_root + "/" + name;
    if (auto ok = check_pinned_layout(map, pin); !ok)
      return ok;
    if (int err = bpf_map__set_pin_path(map, pin.c_str()); err != 0)
      return make_error(fmt::format("pin path {}: {}", pin, errno_text(err)));
  }
  return {};
}

Result<void> prepare_pin_root(const std::string &pin_root)
{
  if (pin_root.rfind(paths::kBpffs, 0) == 0)
    if (auto ok = ensure_bpffs(paths::kBpffs); !ok)
      return ok;
  std::error_code ec;
  fs::create_directories(pin_root + "/links", ec);
  if (ec)
    return make_error(fmt::format("create {}/links: {}", pin_root, ec.message()));
  struct statfs st {};
  if (::statfs(pin_root.c_str(), &st) != 0 || static_cast<unsigned long>(st.f_type) != BPF_FS_MAGIC)
    return make_error(fmt::format("{} is not on a bpffs: maps and links cannot be pinned there", pin_root));
  return {};
}

bpf_link_info link_info(int link_fd)
{
  bpf_link_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0)
    std::memset(&info, 0, sizeof(info));
  return info;
}

struct LinkTarget {
  int target_fd;
  bpf_attach_type type;
  std::uint32_t flags;
  std::function<bool(const bpf_link_info &)> same_target;  // for an existing pin
};

// Attaches `prog_fd` through the link pinned at `pin`: an existing link to the same target gets the
// new program atomically (no moment without enforcement); otherwise a new link is created and pinned.
// Returns true when an existing link was adopted.
Result<bool> attach_pinned(const std::string &pin, int prog_fd, const LinkTarget &target)
{
  if (Fd old(::bpf_obj_get(pin.c_str())); old.get() >= 0) {
    if (target.same_target(link_info(old.get())) && ::bpf_link_update(old.get(), prog_fd, nullptr) == 0)
      return true;
    ::unlink(pin.c_str());
  }
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = target.flags);
  Fd link(::bpf_link_create(prog_fd, target.target_fd, target.type, &opts));
  if (link.get() < 0)
    return make_error(fmt::format("link: {}", errno_text(errno)));
  if (::bpf_obj_pin(link.get(), pin.c_str()) != 0)
    return make_error(fmt::format("pin link {}: {}", pin, errno_text(errno)));
  return false;
}

ProgramInfo program_info(const bpf_program *prog)
{
  ProgramInfo out;
  out.name = bpf_program__name(prog);
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) {
    out.verified_insns = info.verified_insns;
    out.xlated_insns = info.xlated_prog_len / 8;
  }
  return out;
}

template <class Skel>
Result<Skel *> open_skel(Skel *(*open)(const bpf_object_open_opts *), const char *name)
{
  Skel *skel = open(nullptr);
  if (!skel)
    return make_error(fmt::format("open BPF object {}: {}", name, errno_text(errno)));
  return skel;
}

}  // namespace

Result<void> Datapath::load_objects(Objects &objects, const DatapathConfig *config)
{
  const char *names[] = {"xdp_gate", "sock_gate", "sockops_tag", "msg_gate"};
  std::size_t i = 0;
  for (bpf_object *obj : objects.all()) {
    if (config)
      if (auto ok = prepare_maps(obj, *config); !ok)
        return make_error(fmt::format("{}: {}", names[i], ok.error()));
    if (int err = bpf_object__load(obj); err != 0)
      return make_error(fmt::format("load {} (verifier log above): {}", names[i], errno_text(err)));
    ++i;
  }
  return {};
}

Result<std::unique_ptr<Datapath::Objects>> Datapath::open_all()
{
  auto objects = std::make_unique<Objects>();
  auto xdp = open_skel<xdp_gate>(&xdp_gate__open_opts, "xdp_gate");
  if (!xdp)
    return make_error(xdp.error());
  objects->xdp = *xdp;
  auto sock = open_skel<sock_gate>(&sock_gate__open_opts, "sock_gate");
  if (!sock)
    return make_error(sock.error());
  objects->sock = *sock;
  auto sockops = open_skel<sockops_tag>(&sockops_tag__open_opts, "sockops_tag");
  if (!sockops)
    return make_error(sockops.error());
  objects->sockops = *sockops;
  auto msg = open_skel<msg_gate>(&msg_gate__open_opts, "msg_gate");
  if (!msg)
    return make_error(msg.error());
  objects->msg = *msg;
  return objects;
}

Result<std::unique_ptr<Datapath>> Datapath::start(const DatapathConfig &config)
{
  if (auto ok = prepare_pin_root(config.pin_root); !ok)
    return make_error(ok.error());
  const bool existed = fs::exists(config.pin_root + "/rg_counters");
  auto objects = open_all();
  if (!objects)
    return make_error(objects.error());
  if (auto ok = load_objects(**objects, &config); !ok)
    return make_error(ok.error());
  auto maps = PinnedMaps::open(config.pin_root);
  if (!maps)
    return make_error(maps.error());
  std::unique_ptr<Datapath> datapath(new Datapath(config, std::move(*maps), std::move(*objects)));
  datapath->adopted_maps_ = existed;
  if (auto ok = datapath->attach(); !ok)
    return make_error(ok.error());
  return datapath;
}

Datapath::Datapath(DatapathConfig config, PinnedMaps maps, std::unique_ptr<Objects> objects)
    : config_(std::move(config)), maps_(std::move(maps)), objects_(std::move(objects))
{
}

Datapath::~Datapath() = default;

Result<void> Datapath::attach()
{
  if (auto ok = attach_sk_msg(); !ok)
    return ok;
  if (!config_.cgroup.empty())
    if (auto ok = attach_cgroup(config_.cgroup, "", true); !ok)
      return ok;
  if (!config_.proxy_cgroup.empty()) {
    if (auto ok = attach_cgroup(config_.proxy_cgroup, "_proxy", false); !ok)
      return ok;
    auto l7 = maps_.l7_config();
    auto proxy_id = cgroup_id(config_.proxy_cgroup);
    if (!l7 || !proxy_id)
      return make_error(!l7 ? l7.error() : proxy_id.error());
    l7->proxy_cgroup_id = *proxy_id;
    if (auto ok = maps_.set_l7_config(*l7); !ok)
      return ok;
  }
  return attach_xdp();
}

std::string Datapath::link_pin(const std::string &name) const
{
  return config_.pin_root + "/links/" + name;
}

Result<void> Datapath::count_link(Result<bool> adopted, const std::string &what)
{
  if (!adopted)
    return make_error(fmt::format("attach {}: {}", what, adopted.error()));
  adopted_links_ += *adopted ? 1 : 0;
  return {};
}

// sk_msg hangs off the sockhash, so that sockets inserted by sockops are governed at once.
Result<void> Datapath::attach_sk_msg()
{
  const int prog = bpf_program__fd(objects_->msg->progs.rg_msg_gate);
  const int map = maps_.fd(MapId::sockhash);
  LinkTarget target{map, BPF_SK_MSG_VERDICT, 0, [](const bpf_link_info &) { return true; }};
  auto adopted = attach_pinned(link_pin("sk_msg"), prog, target);
  // Kernels without sockmap links: a plain attach, held by the pinned map itself.
  if (!adopted && ::bpf_prog_attach(prog, map, BPF_SK_MSG_VERDICT, 0) == 0)
    adopted = false;
  return count_link(std::move(adopted), "sk_msg to rg_sockhash");
}

Result<void> Datapath::attach_cgroup(const std::string &dir, const std::string &suffix, bool all_programs)
{
  auto cgid = cgroup_id(dir);
  if (!cgid)
    return make_error(cgid.error());
  Fd cg(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.get() < 0)
    return make_error(fmt::format("open cgroup {}: {}", dir, errno_text(errno)));
  struct Hook {
    const char *name;
    bpf_program *prog;
    bpf_attach_type type;
  };
  std::vector<Hook> hooks = {{"getsockopt", objects_->sock->progs.rg_getsockopt, BPF_CGROUP_GETSOCKOPT}};
  if (all_programs) {
    hooks.push_back({"connect4", objects_->sock->progs.rg_connect4, BPF_CGROUP_INET4_CONNECT});
    hooks.push_back({"connect6", objects_->sock->progs.rg_connect6, BPF_CGROUP_INET6_CONNECT});
    hooks.push_back({"sendmsg4", objects_->sock->progs.rg_sendmsg4, BPF_CGROUP_UDP4_SENDMSG});
    hooks.push_back({"sendmsg6", objects_->sock->progs.rg_sendmsg6, BPF_CGROUP_UDP6_SENDMSG});
    hooks.push_back({"sockops", objects_->sockops->progs.rg_sockops, BPF_CGROUP_SOCK_OPS});
  }
  for (const Hook &hook : hooks) {
    const std::uint64_t id = *cgid;
    const bpf_attach_type type = hook.type;
    LinkTarget target{cg.get(), type, 0, [id, type](const bpf_link_info &info) {
                        return info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == id &&
                               info.cgroup.attach_type == static_cast<std::uint32_t>(type);
                      }};
    if (auto ok = count_link(attach_pinned(link_pin(hook.name + suffix), bpf_program__fd(hook.prog), target),
                             fmt::format("{} to cgroup {}", hook.name, dir));
        !ok)
      return ok;
  }
  return {};
}

// Native first, generic as a reported fallback. Links of interfaces no longer configured go.
Result<void> Datapath::attach_xdp()
{
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(link_pin(""), ec)) {
    const std::string name = entry.path().filename();
    if (name.rfind("xdp_", 0) != 0)
      continue;
    bool wanted = false;
    for (const auto &iface : config_.xdp_interfaces) wanted = wanted || name == "xdp_" + iface;
    if (!wanted)
      fs::remove(entry.path(), ec);
  }
  const int xdp_prog = bpf_program__fd(objects_->xdp->progs.rg_xdp_gate);
  for (const auto &iface : config_.xdp_interfaces) {
    const int ifindex = static_cast<int>(::if_nametoindex(iface.c_str()));
    if (ifindex == 0)
      return make_error(fmt::format("xdp interface {}: {}", iface, errno_text(errno)));
    auto same = [ifindex](const bpf_link_info &info) {
      return info.type == BPF_LINK_TYPE_XDP && static_cast<int>(info.xdp.ifindex) == ifindex;
    };
    XdpAttachment attachment{iface, !config_.xdp_generic, ""};
    const std::string pin = link_pin("xdp_" + iface);
    Result<bool> adopted = make_error("generic mode requested");
    if (!config_.xdp_generic)
      adopted = attach_pinned(pin, xdp_prog, LinkTarget{ifindex, BPF_XDP, XDP_FLAGS_DRV_MODE, same});
    if (!adopted) {
      attachment.native = false;
      attachment.fallback_reason = adopted.error();
      adopted = attach_pinned(pin, xdp_prog, LinkTarget{ifindex, BPF_XDP, XDP_FLAGS_SKB_MODE, same});
    }
    if (auto ok = count_link(std::move(adopted), "xdp to " + iface); !ok)
      return ok;
    xdp_.push_back(attachment);
  }
  return {};
}

std::vector<ProgramInfo> Datapath::programs() const
{
  std::vector<ProgramInfo> out;
  for (bpf_object *obj : objects_->all()) {
    bpf_program *prog = nullptr;
    bpf_object__for_each_program(prog, obj) out.push_back(program_info(prog));
  }
  return out;
}

int Datapath::program_fd(const std::string &name) const
{
  for (bpf_object *obj : objects_->all())
    if (const bpf_program *prog = bpf_object__find_program_by_name(obj, name.c_str()))
      return bpf_program__fd(prog);
  return -1;
}

Result<std::vector<ProgramInfo>> Datapath::verify_all()
{
  auto objects = open_all();
  if (!objects)
    return make_error(objects.error());
  if (auto ok = load_objects(**objects, nullptr); !ok)
    return make_error(ok.error());
  std::vector<ProgramInfo> out;
  for (bpf_object *obj : (*objects)->all()) {
    bpf_program *prog = nullptr;
    bpf_object__for_each_program(prog, obj) out.push_back(program_info(prog));
  }
  return out;
}

Result<std::size_t> Datapath::uninstall(const std::string &pin_root)
{
  // Only what riskgate pins is removed, by name: a mistaken --pin-root (say /sys/fs/bpf itself)
  // must not take other software's pins with it.
  std::error_code ec;
  if (!fs::exists(pin_root, ec))
    return std::size_t{0};
  std::size_t removed = 0;
  auto remove_pin = [&](const fs::path &path) -> Result<void> {
    if (fs::remove(path, ec))
      ++removed;
    if (ec)
      return make_error(fmt::format("remove {}: {}", path.string(), ec.message()));
    return {};
  };
  // Links first: removing a link pin detaches its program; then the maps, then the directories.
  const fs::path links = fs::path(pin_root) / "links";
  const std::set<std::string> link_names = {"sk_msg",   "connect4", "connect6",   "sendmsg4",
                                            "sendmsg6", "sockops",  "getsockopt", "getsockopt_proxy"};
  for (const auto &entry : fs::directory_iterator(links, ec)) {
    const std::string name = entry.path().filename();
    if (link_names.count(name) || name.rfind("xdp_", 0) == 0)
      if (auto ok = remove_pin(entry.path()); !ok)
        return make_error(ok.error());
  }
  for (std::size_t i = 0; i < kMapCount; ++i)
    if (auto ok = remove_pin(fs::path(pin_root) / map_name(static_cast<MapId>(i))); !ok)
      return make_error(ok.error());
  fs::remove(links, ec);
  if (!fs::remove(pin_root, ec) || ec)
    return make_error(fmt::format("removed riskgate's {} pins, but {} still holds other files: left in place",
                                  removed, pin_root));
  return removed + 1;
}

}  // namespace riskgate::kernel
