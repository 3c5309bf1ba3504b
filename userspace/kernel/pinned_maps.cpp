#include <riskgate/kernel/pinned_maps.h>
#include <riskgate/common/errors.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

namespace riskgate::kernel {

using namespace net;

namespace {

constexpr const char *kMapNames[kMapCount] = {
    "rg_counters", "rg_events",   "rg_ipcache", "rg_blk_ip",    "rg_blk_id",   "rg_blk_pair",
    "rg_blk_port", "rg_blk_conn", "rg_grace",   "rg_hint_id",   "rg_hint_ip",  "rg_cgroups",
    "rg_id_names", "rg_trusted",  "rg_l7_cfg",  "rg_l7_dst",    "rg_xdp_cfg",  "rg_syn",
    "rg_sock_stg", "rg_orig_stg", "rg_conns",   "rg_endpoints", "rg_orig_dst", "rg_sockhash",
};

template <class K, class V>
Result<void> put(const PinnedMaps &maps, MapId id, const K &key, const V &value)
{
  if (::bpf_map_update_elem(maps.fd(id), &key, &value, BPF_ANY) != 0)
    return make_error(fmt::format("update {}: {}", map_name(id), errno_text(errno)));
  return {};
}

template <class K>
Result<bool> remove(const PinnedMaps &maps, MapId id, const K &key)
{
  if (::bpf_map_delete_elem(maps.fd(id), &key) == 0)
    return true;
  if (errno == ENOENT)
    return false;
  return make_error(fmt::format("delete from {}: {}", map_name(id), errno_text(errno)));
}

template <class K, class V>
Result<std::optional<V>> lookup(const PinnedMaps &maps, MapId id, const K &key)
{
  V value{};
  if (::bpf_map_lookup_elem(maps.fd(id), &key, &value) == 0)
    return std::optional<V>(value);
  if (errno == ENOENT)
    return std::optional<V>();
  return make_error(fmt::format("lookup in {}: {}", map_name(id), errno_text(errno)));
}

// Every (key, value) of a hash or LPM map. Hash maps are read in batches (one syscall per 1024
// entries: the housekeeping sweeps every block map often); LPM tries cannot be, and are walked key
// by key, skipping entries deleted meanwhile.
template <class K, class V>
Result<std::vector<std::pair<K, V>>> entries(const PinnedMaps &maps, MapId id)
{
  constexpr std::uint32_t kBatch = 1024;
  std::vector<std::pair<K, V>> out;
  std::vector<K> keys(kBatch);
  std::vector<V> values(kBatch);
  alignas(8) unsigned char token[64] = {};  // opaque position (a bucket index for hash maps)
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (bool first = true;; first = false) {
    std::uint32_t count = kBatch;
    const int rc = ::bpf_map_lookup_batch(maps.fd(id), first ? nullptr : token, token, keys.data(),
                                          values.data(), &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    if (err != 0 && err != ENOENT) {
      if (first && (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */))
        break;  // no batch support for this map type: walk it
      return make_error(fmt::format("read {}: {}", map_name(id), errno_text(err)));
    }
    for (std::uint32_t i = 0; i < count; ++i) out.emplace_back(keys[i], values[i]);
    if (err == ENOENT)
      return out;
  }
  K key{}, next{};
  const void *prev = nullptr;
  while (::bpf_map_get_next_key(maps.fd(id), prev, &next) == 0) {
    V value{};
    if (::bpf_map_lookup_elem(maps.fd(id), &next, &value) == 0)
      out.emplace_back(next, value);
    key = next;
    prev = &key;
  }
  if (errno != ENOENT)
    return make_error(fmt::format("iterate {}: {}", map_name(id), errno_text(errno)));
  return out;
}

Result<rg_lpm_key> lpm_key(const IpPrefix &prefix)
{
  auto addr = to_mapped(prefix.address);
  if (!addr)
    return make_error(addr.error());
  rg_lpm_key key{};
  key.prefixlen = lpm_prefix_len(prefix);
  std::memcpy(key.addr, addr->data(), sizeof(key.addr));
  return key;
}

IpPrefix prefix_of(const rg_lpm_key &key)
{
  MappedAddr addr;
  std::memcpy(addr.data(), key.addr, addr.size());
  IpPrefix prefix{from_mapped(addr), 0};
  const bool v4 = prefix.address.ss_family == AF_INET && key.prefixlen >= RG_V4_MAPPED_PREFIX;
  prefix.prefix_len = static_cast<std::uint8_t>(v4 ? key.prefixlen - RG_V4_MAPPED_PREFIX : key.prefixlen);
  return prefix;
}

Result<rg_endpoint_key> endpoint_key(const sockaddr_storage &address)
{
  auto addr = to_mapped(address);
  if (!addr)
    return make_error(addr.error());
  rg_endpoint_key key{};
  std::memcpy(key.addr, addr->data(), sizeof(key.addr));
  key.port = port_of(address);
  return key;
}

rg_port_key port_key(const PortKey &key)
{
  rg_port_key out{};
  out.identity = key.identity;
  out.port = key.port;
  out.proto = key.proto;
  return out;
}

// Hint slots (abi.h RG_IP_HINT_BITS) an IP block key covers: the top 16 bits of the v4 address for
// v4-mapped keys, of the v6 address otherwise; a shorter prefix covers a range of slots, and a v6
// prefix covering the v4-mapped space covers every slot.
std::pair<std::uint32_t, std::uint32_t> ip_hint_slots(const rg_lpm_key &key)
{
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const bool mapped_key = std::memcmp(key.addr, kMapped, sizeof(kMapped)) == 0;
  std::uint32_t len = key.prefixlen;
  std::uint32_t base = 0;
  if (mapped_key && len >= RG_V4_MAPPED_PREFIX) {
    len -= RG_V4_MAPPED_PREFIX;
    base = std::uint32_t{key.addr[12]} << 8 | key.addr[13];
  } else {
    // Does this v6 prefix contain ::ffff:0:0/96? Then every v4 address is covered.
    bool covers_v4 = len <= RG_V4_MAPPED_PREFIX;
    for (std::uint32_t bit = 0; covers_v4 && bit < len; ++bit)
      covers_v4 = ((key.addr[bit / 8] ^ kMapped[bit / 8]) & (0x80u >> (bit % 8))) == 0;
    if (covers_v4)
      return {0, RG_HINT_SLOTS};
    base = std::uint32_t{key.addr[0]} << 8 | key.addr[1];
  }
  if (len >= RG_IP_HINT_BITS)
    return {base, base + 1};
  const std::uint32_t span = 1u << (RG_IP_HINT_BITS - len);
  base &= ~(span - 1);
  return {base, base + span};
}

// Every u32 of a RG_HINT_SLOTS array in one batch syscall.
Result<std::vector<std::uint32_t>> read_hints(const PinnedMaps &maps, MapId id)
{
  std::vector<std::uint32_t> keys(RG_HINT_SLOTS), values(RG_HINT_SLOTS);
  std::uint32_t count = RG_HINT_SLOTS, out_batch = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (::bpf_map_lookup_batch(maps.fd(id), nullptr, &out_batch, keys.data(), values.data(), &count, &opts) !=
          0 &&
      errno != ENOENT)
    return make_error(fmt::format("read {}: {}", map_name(id), errno_text(errno)));
  std::vector<std::uint32_t> out(RG_HINT_SLOTS, 0);
  for (std::uint32_t i = 0; i < count; ++i)
    if (keys[i] < RG_HINT_SLOTS)
      out[keys[i]] = values[i];
  return out;
}

Result<void> check_identity(IdentityId identity)
{
  if (identity == RG_IDENTITY_WORLD)
    return make_error("identity 0 is 'world' (every unknown peer) and cannot be used here");
  return {};
}

}  // namespace

const char *map_name(MapId id)
{
  return kMapNames[static_cast<std::size_t>(id)];
}

std::uint64_t monotonic_now_ns()
{
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t expires_after(std::chrono::nanoseconds ttl)
{
  if (ttl.count() <= 0)
    return RG_EXPIRES_NEVER;
  return monotonic_now_ns() + static_cast<std::uint64_t>(ttl.count());
}

rg_block_val block_value(std::chrono::milliseconds ttl, std::uint64_t decision_id, std::uint32_t reason,
                         std::uint32_t flags)
{
  rg_block_val value{};
  value.expires_ns = expires_after(ttl);
  value.decision_id = decision_id;
  value.reason = reason;
  value.flags = flags;
  return value;
}

bool block_live(const rg_block_val &value, std::uint64_t now_ns)
{
  return value.expires_ns == RG_EXPIRES_NEVER || now_ns < value.expires_ns;
}

Result<PinnedMaps> PinnedMaps::open(const std::string &pin_root)
{
  PinnedMaps maps;
  maps.pin_root_ = pin_root;
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

PinnedMaps::PinnedMaps(PinnedMaps &&other) noexcept : pin_root_(std::move(other.pin_root_)), fds_(other.fds_)
{
  other.fds_.fill(-1);
}

PinnedMaps &PinnedMaps::operator=(PinnedMaps &&other) noexcept
{
  if (this != &other) {
    close_all();
    pin_root_ = std::move(other.pin_root_);
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

// ---- blocks ----

Result<void> PinnedMaps::set_ip_hints(const rg_lpm_key &key)
{
  const auto [first, last] = ip_hint_slots(key);
  for (std::uint32_t slot = first; slot < last; ++slot)
    if (auto ok = put(*this, MapId::blk_iphint, slot, std::uint32_t{1}); !ok)
      return ok;
  return {};
}

Result<void> PinnedMaps::block_ip(const IpPrefix &prefix, const rg_block_val &value)
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  if (auto ok = set_ip_hints(*key); !ok)
    return ok;
  if (auto ok = put(*this, MapId::blk_ip, *key, value); !ok)
    return ok;
  return set_ip_hints(*key);
}

Result<bool> PinnedMaps::unblock_ip(const IpPrefix &prefix)
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  auto removed = remove(*this, MapId::blk_ip, *key);
  if (removed && *removed)
    (void)rebuild_block_hints();
  return removed;
}

Result<std::vector<IpBlock>> PinnedMaps::ip_blocks() const
{
  auto all = entries<rg_lpm_key, rg_block_val>(*this, MapId::blk_ip);
  if (!all)
    return make_error(all.error());
  std::vector<IpBlock> out;
  for (const auto &[key, value] : *all) out.push_back({prefix_of(key), value});
  return out;
}

Result<void> PinnedMaps::set_block_hint(IdentityId identity)
{
  return put(*this, MapId::blk_hint, std::uint32_t{identity & RG_HINT_MASK}, std::uint32_t{1});
}

Result<void> PinnedMaps::block_identity(IdentityId identity, const rg_block_val &value)
{
  if (auto ok = check_identity(identity); !ok)
    return ok;
  if (auto ok = set_block_hint(identity); !ok)
    return ok;
  if (auto ok = put(*this, MapId::blk_id, identity, value); !ok)
    return ok;
  return set_block_hint(identity);
}

Result<bool> PinnedMaps::unblock_identity(IdentityId identity)
{
  auto removed = remove(*this, MapId::blk_id, identity);
  if (removed && *removed) {
    (void)release_unblocked_sockets();
    (void)rebuild_block_hints();
  }
  return removed;
}

Result<std::vector<IdentityBlock>> PinnedMaps::identity_blocks() const
{
  auto all = entries<IdentityId, rg_block_val>(*this, MapId::blk_id);
  if (!all)
    return make_error(all.error());
  std::vector<IdentityBlock> out;
  for (const auto &[key, value] : *all) out.push_back({key, value});
  return out;
}

Result<void> PinnedMaps::block_pair(IdentityId src, IdentityId dst, const rg_block_val &value)
{
  return put(*this, MapId::blk_pair, rg_pair_key{src, dst}, value);
}

Result<bool> PinnedMaps::unblock_pair(IdentityId src, IdentityId dst)
{
  auto removed = remove(*this, MapId::blk_pair, rg_pair_key{src, dst});
  if (removed && *removed)
    (void)release_unblocked_sockets();
  return removed;
}

Result<std::vector<PairBlock>> PinnedMaps::pair_blocks() const
{
  auto all = entries<rg_pair_key, rg_block_val>(*this, MapId::blk_pair);
  if (!all)
    return make_error(all.error());
  std::vector<PairBlock> out;
  for (const auto &[key, value] : *all) out.push_back({key.src_identity, key.dst_identity, value});
  return out;
}

Result<void> PinnedMaps::block_port(const PortKey &key, const rg_block_val &value)
{
  if (auto ok = set_block_hint(key.identity); !ok)
    return ok;
  if (auto ok = put(*this, MapId::blk_port, port_key(key), value); !ok)
    return ok;
  return set_block_hint(key.identity);
}

Result<bool> PinnedMaps::unblock_port(const PortKey &key)
{
  auto removed = remove(*this, MapId::blk_port, port_key(key));
  if (removed && *removed)
    (void)rebuild_block_hints();
  return removed;
}

Result<std::vector<PortBlock>> PinnedMaps::port_blocks() const
{
  auto all = entries<rg_port_key, rg_block_val>(*this, MapId::blk_port);
  if (!all)
    return make_error(all.error());
  std::vector<PortBlock> out;
  for (const auto &[key, value] : *all) out.push_back({key.identity, key.port, key.proto, value});
  return out;
}

Result<void> PinnedMaps::block_connection(std::uint64_t cookie, const rg_block_val &value)
{
  return put(*this, MapId::blk_conn, cookie, value);
}

Result<bool> PinnedMaps::unblock_connection(std::uint64_t cookie)
{
  auto removed = remove(*this, MapId::blk_conn, cookie);
  if (removed && *removed)
    (void)release_unblocked_sockets();
  return removed;
}

Result<std::vector<ConnectionBlock>> PinnedMaps::connection_blocks() const
{
  auto all = entries<std::uint64_t, rg_block_val>(*this, MapId::blk_conn);
  if (!all)
    return make_error(all.error());
  std::vector<ConnectionBlock> out;
  for (const auto &[key, value] : *all) out.push_back({key, value});
  return out;
}

Result<std::optional<rg_block_val>> PinnedMaps::ip_block(const IpPrefix &prefix) const
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  return lookup<rg_lpm_key, rg_block_val>(*this, MapId::blk_ip, *key);
}

Result<std::optional<rg_block_val>> PinnedMaps::identity_block(IdentityId identity) const
{
  return lookup<IdentityId, rg_block_val>(*this, MapId::blk_id, identity);
}

Result<std::optional<rg_block_val>> PinnedMaps::pair_block(IdentityId src, IdentityId dst) const
{
  return lookup<rg_pair_key, rg_block_val>(*this, MapId::blk_pair, rg_pair_key{src, dst});
}

Result<std::optional<rg_block_val>> PinnedMaps::connection_block(std::uint64_t cookie) const
{
  return lookup<std::uint64_t, rg_block_val>(*this, MapId::blk_conn, cookie);
}

Result<std::size_t> PinnedMaps::remove_expired_blocks()
{
  const std::uint64_t now = monotonic_now_ns();
  std::size_t removed = 0;
  auto sweep = [&](MapId id, auto key_tag) -> Result<void> {
    using K = decltype(key_tag);
    auto all = entries<K, rg_block_val>(*this, id);
    if (!all)
      return make_error(all.error());
    for (const auto &[key, value] : *all) {
      if (block_live(value, now))
        continue;
      auto gone = remove(*this, id, key);
      if (!gone)
        return make_error(gone.error());
      removed += *gone ? 1 : 0;
    }
    return {};
  };
  for (auto r : {sweep(MapId::blk_ip, rg_lpm_key{}), sweep(MapId::blk_id, IdentityId{}),
                 sweep(MapId::blk_pair, rg_pair_key{}), sweep(MapId::blk_port, rg_port_key{}),
                 sweep(MapId::blk_conn, std::uint64_t{})})
    if (!r)
      return make_error(r.error());
  if (removed > 0)
    if (auto ok = rebuild_block_hints(); !ok)
      return make_error(ok.error());
  return removed;
}

Result<void> PinnedMaps::rebuild_block_hints()
{
  // Slots the current blocks need, per hint array.
  auto needed = [this]() -> Result<std::array<std::set<std::uint32_t>, 2>> {
    std::array<std::set<std::uint32_t>, 2> slots;
    auto ids = entries<IdentityId, rg_block_val>(*this, MapId::blk_id);
    auto ports = entries<rg_port_key, rg_block_val>(*this, MapId::blk_port);
    auto ips = entries<rg_lpm_key, rg_block_val>(*this, MapId::blk_ip);
    if (!ids || !ports || !ips)
      return make_error(!ids ? ids.error() : !ports ? ports.error() : ips.error());
    for (const auto &entry : *ids) slots[0].insert(entry.first & RG_HINT_MASK);
    for (const auto &entry : *ports) slots[0].insert(entry.first.identity & RG_HINT_MASK);
    for (const auto &entry : *ips) {
      const auto [first, last] = ip_hint_slots(entry.first);
      for (std::uint32_t slot = first; slot < last; ++slot) slots[1].insert(slot);
    }
    return slots;
  };
  const MapId arrays[2] = {MapId::blk_hint, MapId::blk_iphint};
  auto before = needed();
  if (!before)
    return make_error(before.error());
  for (int a = 0; a < 2; ++a) {
    auto hints = read_hints(*this, arrays[a]);
    if (!hints)
      return make_error(hints.error());
    for (std::uint32_t slot = 0; slot < RG_HINT_SLOTS; ++slot)
      if ((*hints)[slot] != 0 && !(*before)[a].count(slot))
        if (auto ok = put(*this, arrays[a], slot, std::uint32_t{0}); !ok)
          return ok;
  }
  // A block written while we cleared: its writer sets the hint again after its write, unless that
  // write came before this second read, which then finds it.
  auto after = needed();
  if (!after)
    return make_error(after.error());
  for (int a = 0; a < 2; ++a)
    for (std::uint32_t slot : (*after)[a])
      if (!(*before)[a].count(slot))
        if (auto ok = put(*this, arrays[a], slot, std::uint32_t{1}); !ok)
          return ok;
  return {};
}

// ---- connections ----

Result<std::vector<rg_sock_tag>> PinnedMaps::connections() const
{
  auto all = entries<std::uint64_t, rg_sock_tag>(*this, MapId::conns);
  if (!all)
    return make_error(all.error());
  std::vector<rg_sock_tag> out;
  out.reserve(all->size());
  for (const auto &entry : *all) out.push_back(entry.second);
  return out;
}

Result<std::optional<rg_sock_tag>> PinnedMaps::connection(std::uint64_t cookie) const
{
  return lookup<std::uint64_t, rg_sock_tag>(*this, MapId::conns, cookie);
}

Result<bool> PinnedMaps::release_socket(std::uint64_t cookie)
{
  auto tag = connection(cookie);
  if (!tag)
    return make_error(tag.error());
  if (!*tag)
    return false;
  rg_sock_key key{};
  std::memcpy(key.local_addr, (*tag)->local_addr, sizeof(key.local_addr));
  std::memcpy(key.remote_addr, (*tag)->remote_addr, sizeof(key.remote_addr));
  key.local_port = (*tag)->local_port;
  key.remote_port = (*tag)->remote_port;
  auto removed = remove(*this, MapId::sockhash, key);
  if (!removed)
    return removed;
  rg_sock_tag updated = **tag;
  updated.flags &= ~(RG_SOCK_F_GOVERNED | RG_SOCK_F_DROPPED | RG_SOCK_F_FASTPATH);
  updated.verdict = RG_R_NONE;
  // BPF_EXIST: the socket may have closed meanwhile; then there is nothing to update.
  ::bpf_map_update_elem(fd(MapId::conns), &cookie, &updated, BPF_EXIST);
  return removed;
}

Result<std::size_t> PinnedMaps::release_unblocked_sockets()
{
  auto conns = connections();
  if (!conns)
    return make_error(conns.error());
  const std::uint64_t now = monotonic_now_ns();
  auto live = [&](auto result) { return result.ok() && result->has_value() && block_live(**result, now); };
  std::size_t released = 0;
  for (const rg_sock_tag &tag : *conns) {
    if (!(tag.flags & RG_SOCK_F_DROPPED))
      continue;
    const bool passive = tag.flags & RG_SOCK_F_PASSIVE;
    const IdentityId client = passive ? tag.dst_identity : tag.src_identity;
    const IdentityId server = passive ? tag.src_identity : tag.dst_identity;
    const bool still_blocked =
        live(lookup<std::uint64_t, rg_block_val>(*this, MapId::blk_conn, tag.cookie)) ||
        (tag.src_identity &&
         live(lookup<IdentityId, rg_block_val>(*this, MapId::blk_id, tag.src_identity))) ||
        (tag.dst_identity &&
         live(lookup<IdentityId, rg_block_val>(*this, MapId::blk_id, tag.dst_identity))) ||
        live(lookup<rg_pair_key, rg_block_val>(*this, MapId::blk_pair, rg_pair_key{client, server}));
    if (still_blocked)
      continue;
    auto gone = release_socket(tag.cookie);
    if (!gone)
      return make_error(gone.error());
    released += *gone ? 1 : 0;
  }
  return released;
}

// ---- identities ----

Result<void> PinnedMaps::put_ipcache(const IpPrefix &prefix, IdentityId identity, std::uint32_t flags)
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  return put(*this, MapId::ipcache, *key, rg_ipcache_val{identity, flags});
}

Result<bool> PinnedMaps::remove_ipcache(const IpPrefix &prefix)
{
  auto key = lpm_key(prefix);
  if (!key)
    return make_error(key.error());
  return remove(*this, MapId::ipcache, *key);
}

Result<std::vector<IpcacheEntry>> PinnedMaps::ipcache() const
{
  auto all = entries<rg_lpm_key, rg_ipcache_val>(*this, MapId::ipcache);
  if (!all)
    return make_error(all.error());
  std::vector<IpcacheEntry> out;
  for (const auto &[key, value] : *all) out.push_back({prefix_of(key), value.identity, value.flags});
  return out;
}

Result<IdentityId> PinnedMaps::ipcache_identity(const sockaddr_storage &address) const
{
  auto key = lpm_key(IpPrefix{address, 0});
  if (!key)
    return make_error(key.error());
  auto value = lookup<rg_lpm_key, rg_ipcache_val>(*this, MapId::ipcache, *key);
  if (!value)
    return make_error(value.error());
  return *value ? (*value)->identity : RG_IDENTITY_WORLD;
}

Result<void> PinnedMaps::put_cgroup(std::uint64_t cgroup_id, IdentityId identity, std::uint32_t flags)
{
  return put(*this, MapId::cgroups, cgroup_id, rg_cgroup_val{identity, flags});
}

Result<bool> PinnedMaps::remove_cgroup(std::uint64_t cgroup_id)
{
  return remove(*this, MapId::cgroups, cgroup_id);
}

Result<std::vector<CgroupEntry>> PinnedMaps::cgroups() const
{
  auto all = entries<std::uint64_t, rg_cgroup_val>(*this, MapId::cgroups);
  if (!all)
    return make_error(all.error());
  std::vector<CgroupEntry> out;
  for (const auto &[key, value] : *all) out.push_back({key, value.identity, value.flags});
  return out;
}

Result<void> PinnedMaps::put_identity_name(IdentityId identity, const std::string &name)
{
  if (auto ok = check_identity(identity); !ok)
    return ok;
  rg_identity_name value{};
  if (name.empty() || name.size() >= sizeof(value.name))
    return make_error(fmt::format("identity name '{}' must be 1 to {} bytes", name, sizeof(value.name) - 1));
  std::memcpy(value.name, name.data(), name.size());
  return put(*this, MapId::id_names, identity, value);
}

Result<bool> PinnedMaps::remove_identity_name(IdentityId identity)
{
  return remove(*this, MapId::id_names, identity);
}

Result<std::map<IdentityId, std::string>> PinnedMaps::identity_names() const
{
  auto all = entries<IdentityId, rg_identity_name>(*this, MapId::id_names);
  if (!all)
    return make_error(all.error());
  std::map<IdentityId, std::string> out;
  for (const auto &[key, value] : *all)
    out[key] = std::string(value.name, ::strnlen(value.name, sizeof(value.name)));
  return out;
}

Result<void> PinnedMaps::sync_identities(const std::vector<IdentityRecord> &records)
{
  std::set<std::uint64_t> cgroup_ids;
  std::set<std::pair<std::uint32_t, MappedAddr>> prefixes;
  std::set<IdentityId> ids;
  for (const auto &record : records) {
    if (auto ok = check_identity(record.id); !ok)
      return make_error(fmt::format("identity '{}': {}", record.name, ok.error()));
    if (auto ok = put_identity_name(record.id, record.name); !ok)
      return ok;
    ids.insert(record.id);
    for (std::uint64_t cgroup_id : record.cgroup_ids) {
      if (auto ok = put_cgroup(cgroup_id, record.id); !ok)
        return ok;
      cgroup_ids.insert(cgroup_id);
    }
    for (const auto &prefix : record.cidrs) {
      if (auto ok = put_ipcache(prefix, record.id); !ok)
        return make_error(
            fmt::format("identity '{}' cidr {}: {}", record.name, to_string(prefix), ok.error()));
      auto key = lpm_key(prefix);
      MappedAddr addr;
      std::memcpy(addr.data(), key->addr, addr.size());
      prefixes.insert({key->prefixlen, addr});
    }
  }
  // Stale entries go after the new ones are in, so a renamed identity never passes through "unknown".
  auto cgs = cgroups();
  if (!cgs)
    return make_error(cgs.error());
  for (const auto &entry : *cgs)
    if (!cgroup_ids.count(entry.cgroup_id) && !(entry.flags & RG_CGROUP_F_PROXY))
      if (auto gone = remove_cgroup(entry.cgroup_id); !gone)
        return make_error(gone.error());
  auto cache = entries<rg_lpm_key, rg_ipcache_val>(*this, MapId::ipcache);
  if (!cache)
    return make_error(cache.error());
  for (const auto &[key, value] : *cache) {
    MappedAddr addr;
    std::memcpy(addr.data(), key.addr, addr.size());
    if (!prefixes.count({key.prefixlen, addr}))
      if (auto gone = remove(*this, MapId::ipcache, key); !gone)
        return make_error(gone.error());
  }
  auto names = identity_names();
  if (!names)
    return make_error(names.error());
  for (const auto &[id, name] : *names)
    if (!ids.count(id))
      if (auto gone = remove_identity_name(id); !gone)
        return make_error(gone.error());
  return {};
}

Result<std::optional<rg_endpoint_val>> PinnedMaps::endpoint(const sockaddr_storage &client) const
{
  auto key = endpoint_key(client);
  if (!key)
    return make_error(key.error());
  return lookup<rg_endpoint_key, rg_endpoint_val>(*this, MapId::endpoints, *key);
}

// ---- fast path, transparent redirect, XDP ----

Result<void> PinnedMaps::put_trusted(IdentityId client, IdentityId server, std::uint32_t origin)
{
  return put(*this, MapId::trusted, rg_pair_key{client, server}, origin);
}

Result<bool> PinnedMaps::remove_trusted(IdentityId client, IdentityId server)
{
  return remove(*this, MapId::trusted, rg_pair_key{client, server});
}

Result<std::vector<TrustedPair>> PinnedMaps::trusted() const
{
  auto all = entries<rg_pair_key, std::uint32_t>(*this, MapId::trusted);
  if (!all)
    return make_error(all.error());
  std::vector<TrustedPair> out;
  for (const auto &[key, origin] : *all) out.push_back({key.src_identity, key.dst_identity, origin});
  return out;
}

namespace {

Result<rg_grace_key> grace_key(std::string_view target)
{
  rg_grace_key key{};
  if (target.empty() || target.size() >= sizeof key.target)
    return make_error(fmt::format("grace target \"{}\": 1 to {} characters", target, sizeof key.target - 1));
  std::memcpy(key.target, target.data(), target.size());
  return key;
}

}  // namespace

Result<void> PinnedMaps::put_grace(std::string_view target, std::uint64_t until_ns)
{
  auto key = grace_key(target);
  if (!key)
    return make_error(key.error());
  return put(*this, MapId::grace, *key, until_ns);
}

Result<std::optional<std::uint64_t>> PinnedMaps::grace(std::string_view target) const
{
  auto key = grace_key(target);
  if (!key)
    return make_error(key.error());
  return lookup<rg_grace_key, std::uint64_t>(*this, MapId::grace, *key);
}

Result<std::size_t> PinnedMaps::remove_ended_graces(std::uint64_t now_ns)
{
  auto all = entries<rg_grace_key, std::uint64_t>(*this, MapId::grace);
  if (!all)
    return make_error(all.error());
  std::size_t removed = 0;
  for (const auto &[key, until] : *all) {
    if (until > now_ns)
      continue;
    auto gone = remove(*this, MapId::grace, key);
    if (!gone)
      return make_error(gone.error());
    removed += *gone ? 1 : 0;
  }
  return removed;
}

Result<void> PinnedMaps::sync_trusted(const std::set<std::pair<IdentityId, IdentityId>> &pairs)
{
  auto present = trusted();
  if (!present)
    return make_error(present.error());
  std::set<std::pair<IdentityId, IdentityId>> in_map;
  for (const auto &pair : *present) {
    const std::pair key{pair.client, pair.server};
    in_map.insert(key);
    if (pair.origin == RG_TRUSTED_F_POLICY && !pairs.count(key))
      if (auto gone = remove_trusted(pair.client, pair.server); !gone)
        return make_error(fmt::format("trusted pair {} -> {}: {}", pair.client, pair.server, gone.error()));
  }
  for (const auto &[client, server] : pairs)
    if (!in_map.count({client, server}))
      if (auto added = put_trusted(client, server, RG_TRUSTED_F_POLICY); !added)
        return make_error(fmt::format("trusted pair {} -> {}: {}", client, server, added.error()));
  return {};
}

Result<void> PinnedMaps::set_l7_config(const rg_l7_config &config)
{
  return put(*this, MapId::l7_cfg, std::uint32_t{0}, config);
}

Result<rg_l7_config> PinnedMaps::l7_config() const
{
  auto value = lookup<std::uint32_t, rg_l7_config>(*this, MapId::l7_cfg, 0u);
  if (!value)
    return make_error(value.error());
  return value->value_or(rg_l7_config{});
}

Result<void> PinnedMaps::put_l7_destination(const PortKey &destination)
{
  return put(*this, MapId::l7_dst, port_key(destination), std::uint32_t{1});
}

Result<bool> PinnedMaps::remove_l7_destination(const PortKey &destination)
{
  return remove(*this, MapId::l7_dst, port_key(destination));
}

Result<std::optional<sockaddr_storage>> PinnedMaps::original_destination(const sockaddr_storage &client) const
{
  auto key = endpoint_key(client);
  if (!key)
    return make_error(key.error());
  auto value = lookup<rg_endpoint_key, rg_orig_dst_val>(*this, MapId::orig_dst, *key);
  if (!value)
    return make_error(value.error());
  if (!*value)
    return std::optional<sockaddr_storage>();
  MappedAddr addr;
  std::memcpy(addr.data(), (*value)->addr, addr.size());
  return std::optional<sockaddr_storage>(from_mapped(addr, (*value)->port));
}

Result<void> PinnedMaps::set_xdp_config(const rg_xdp_config &config)
{
  return put(*this, MapId::xdp_cfg, std::uint32_t{0}, config);
}

Result<rg_xdp_config> PinnedMaps::xdp_config() const
{
  auto value = lookup<std::uint32_t, rg_xdp_config>(*this, MapId::xdp_cfg, 0u);
  if (!value)
    return make_error(value.error());
  return value->value_or(rg_xdp_config{});
}

// ---- counters ----

Result<Counters> PinnedMaps::counters() const
{
  const int ncpu = ::libbpf_num_possible_cpus();
  if (ncpu <= 0)
    return make_error(fmt::format("count possible CPUs: {}", errno_text(ncpu)));
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpu));
  Counters out{};
  for (std::uint32_t reason = 0; reason < RG_R_MAX; ++reason) {
    if (::bpf_map_lookup_elem(fd(MapId::counters), &reason, per_cpu.data()) != 0)
      return make_error(fmt::format("read {}[{}]: {}", map_name(MapId::counters), reason, errno_text(errno)));
    for (std::uint64_t v : per_cpu) out[reason] += v;
  }
  return out;
}

// ---- peer identity ----

IdentityId MapPeerIdentity::peer_identity(const sockaddr_storage &peer, const sockaddr_storage &,
                                          std::uint64_t) const
{
  if (auto local = maps_.endpoint(peer); local && *local)
    return (*local)->identity;
  auto remote = maps_.ipcache_identity(peer);
  return remote ? *remote : RG_IDENTITY_WORLD;
}

}  // namespace riskgate::kernel
