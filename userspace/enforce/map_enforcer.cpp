#include <riskgate/common/reasons.h>
#include <riskgate/enforce/map_enforcer.h>

#include <cerrno>
#include <map>

#include <fmt/format.h>

#include <riskgate/common/thread_name.h>

#include <riskgate/common/net.h>

namespace riskgate::enforce {

namespace {

net::IpPrefix prefix_of(const BlockTarget &target)
{
  net::IpPrefix prefix;
  prefix.address = target.address;
  const std::uint8_t host = target.address.ss_family == AF_INET ? 32 : 128;
  prefix.prefix_len = target.prefix_len == 0 ? host : target.prefix_len;
  return prefix;
}

Result<void> validate(const BlockTarget &target)
{
  switch (target.scope) {
    case BlockScope::ip:
      if (target.address.ss_family != AF_INET && target.address.ss_family != AF_INET6)
        return make_error("ip block without an IPv4/IPv6 address");
      if (target.prefix_len > (target.address.ss_family == AF_INET ? 32 : 128))
        return make_error(
            fmt::format("ip block: prefix /{} is too long for the address family", target.prefix_len));
      return {};
    case BlockScope::identity:
      if (target.identity == RG_IDENTITY_WORLD)
        return make_error("identity 0 is 'world' (every unknown peer): block by ip instead");
      return {};
    case BlockScope::pair:
      if (target.identity == RG_IDENTITY_WORLD && target.peer_identity == RG_IDENTITY_WORLD)
        return make_error("pair block between 'world' and 'world' would block every unknown peer");
      return {};
    case BlockScope::connection:
      if (target.socket_cookie == 0)
        return make_error("connection block without a socket cookie");
      return {};
  }
  return make_error("unknown block scope");
}

std::uint64_t deadline(std::uint64_t ttl_ms)
{
  return kernel::expires_after(std::chrono::milliseconds(ttl_ms));
}

// Whether a live entry already blocks at least until `expires`.
bool covers(const rg_block_val &existing, std::uint64_t expires)
{
  if (existing.expires_ns == RG_EXPIRES_NEVER)
    return true;
  return expires != RG_EXPIRES_NEVER && existing.expires_ns >= expires;
}

// act(table, key) with the block table of the target's scope and the target's key in it.
template <class Act>
auto on_block_table(kernel::PinnedMaps &maps, const BlockTarget &target, Act act)
    -> decltype(act(maps.identity_blocks(), target.identity))
{
  switch (target.scope) {
    case BlockScope::ip: return act(maps.ip_blocks(), prefix_of(target));
    case BlockScope::identity: return act(maps.identity_blocks(), target.identity);
    case BlockScope::pair:
      return act(maps.pair_blocks(), kernel::PairKey{target.identity, target.peer_identity});
    case BlockScope::connection: return act(maps.connection_blocks(), target.socket_cookie);
  }
  return make_error("unknown block scope");
}

// The target a block table's key names: the inverse of on_block_table.
BlockTarget target_of(const net::IpPrefix &prefix)
{
  return {.scope = BlockScope::ip, .address = prefix.address, .prefix_len = prefix.prefix_len};
}

BlockTarget target_of(IdentityId identity)
{
  return {.scope = BlockScope::identity, .identity = identity};
}

BlockTarget target_of(const kernel::PairKey &pair)
{
  return {.scope = BlockScope::pair, .identity = pair.src, .peer_identity = pair.dst};
}

BlockTarget target_of(std::uint64_t socket_cookie)
{
  return {.scope = BlockScope::connection, .socket_cookie = socket_cookie};
}

// Appends the table's blocks in force at `now`.
template <class Key>
Result<void> append_live(const kernel::BlockTable<Key> &table, std::uint64_t now,
                         std::vector<ActiveBlock> &out)
{
  auto blocks = table.list();
  if (!blocks)
    return make_error(blocks.error());
  for (const auto &block : *blocks)
    if (kernel::block_live(block.value, now))
      out.push_back({target_of(block.key), block.value});
  return {};
}

}  // namespace

MapEnforcer::MapEnforcer(kernel::PinnedMaps &maps, Options options) : maps_(maps), options_(options) {}

MapEnforcer::~MapEnforcer()
{
  {
    std::lock_guard lock(gc_mutex_);
    stopping_ = true;
  }
  gc_wake_.notify_all();
  if (gc_thread_.joinable())
    gc_thread_.join();
}

Result<std::optional<rg_block_val>> MapEnforcer::lookup(const BlockTarget &target) const
{
  return on_block_table(maps_, target,
                        [](const auto &table, const auto &block_key) { return table.get(block_key); });
}

Result<void> MapEnforcer::write(const BlockTarget &target, const rg_block_val &value)
{
  return on_block_table(
      maps_, target, [&](const auto &table, const auto &block_key) { return table.put(block_key, value); });
}

// Called with mutex_ held.
Result<void> MapEnforcer::write_with_retries(const BlockTarget &target, const rg_block_val &value)
{
  Result<void> result;
  for (unsigned attempt = 0; attempt < std::max(options_.attempts, 1u); ++attempt) {
    if (attempt > 0)
      ++stats_.retried;
    result = write(target, value);
    if (result)
      return result;
    // A full hash map refuses new keys with E2BIG: make room from expired entries only.
    if (errno == E2BIG) {
      ++stats_.map_full;
      fmt::print(stderr, "riskgated: {}: block map full; evicting expired entries only\n", describe(target));
      if (auto removed = maps_.remove_expired_blocks(); removed && *removed > 0)
        stats_.gc_removed += *removed;
      else
        break;  // nothing expired: retrying cannot succeed, and live blocks are never evicted
    }
  }
  return result;
}

Result<void> MapEnforcer::block(const BlockRequest &request)
{
  if (auto ok = validate(request.target); !ok)
    return make_error(fmt::format("block {}: {}", describe(request.target), ok.error()));
  const std::string key = describe(request.target);
  const std::uint64_t now = kernel::monotonic_now_ns();
  std::lock_guard lock(mutex_);
  if (!request.manual) {
    // A grace that cannot be read does not stop the block: the decision stands.
    const auto grace = maps_.grace(key);
    if (grace && *grace && now < **grace) {
      ++stats_.suppressed;
      return {};
    }
  }
  rg_block_val value{};
  value.expires_ns = deadline(request.ttl_ms);
  value.decision_id = request.decision_id;
  value.reason = RG_R_USER_BLOCK;
  value.flags = request.manual ? RG_BLOCK_F_MANUAL : 0;

  auto existing = lookup(request.target);
  if (!existing)
    return make_error(fmt::format("block {}: {}", key, existing.error()));
  const bool live = existing->has_value() && kernel::block_live(**existing, now);
  if (live) {
    const bool flags_kept = request.manual ? ((*existing)->flags & RG_BLOCK_F_MANUAL) != 0 : true;
    if (covers(**existing, value.expires_ns) && flags_kept) {
      ++stats_.deduplicated;
      return {};
    }
    // Extending keeps the longer deadline and an operator's mark.
    if (covers(**existing, value.expires_ns))
      value.expires_ns = (*existing)->expires_ns;
    value.flags |= (*existing)->flags & RG_BLOCK_F_MANUAL;
  }
  auto written = write_with_retries(request.target, value);
  if (!written) {
    ++stats_.failed;
    pending_.push_back({request.target, value});
    fmt::print(stderr, "riskgated: block {} failed: {}; retrying in the background\n", key, written.error());
    return make_error(fmt::format("block {}: {} (queued for retry)", key, written.error()));
  }
  ++stats_.written;
  if (live)
    ++stats_.extended;
  return {};
}

Result<bool> MapEnforcer::remove(const BlockTarget &target, bool manual)
{
  if (auto ok = validate(target); !ok)
    return make_error(fmt::format("unblock {}: {}", describe(target), ok.error()));
  const std::string key = describe(target);
  if (manual && options_.manual_grace.count() > 0) {
    const auto until = kernel::monotonic_now_ns() +
                       static_cast<std::uint64_t>(std::chrono::nanoseconds(options_.manual_grace).count());
    if (auto held = maps_.put_grace(key, until); !held)
      return make_error(fmt::format("unblock {}: grace: {}", key, held.error()));
  }
  std::lock_guard lock(mutex_);
  std::erase_if(pending_, [&](const Pending &p) { return describe(p.target) == key; });
  // The datapath's unblock also releases sockets sk_msg was dropping on for this block.
  auto removed = on_block_table(
      maps_, target, [](const auto &table, const auto &block_key) { return table.remove(block_key); });
  if (!removed)
    return make_error(fmt::format("unblock {}: {}", key, removed.error()));
  if (*removed)
    ++stats_.unblocked;
  return removed;
}

void MapEnforcer::hold_off(const std::string &target)
{
  std::lock_guard lock(mutex_);
  std::erase_if(pending_, [&](const Pending &p) { return describe(p.target) == target; });
}

Result<void> MapEnforcer::unblock(const BlockTarget &target, bool manual)
{
  auto removed = remove(target, manual);
  if (!removed)
    return make_error(removed.error());
  return {};
}

Result<std::vector<ActiveBlock>> MapEnforcer::active() const
{
  const std::uint64_t now = kernel::monotonic_now_ns();
  std::vector<ActiveBlock> out;
  for (auto ok :
       {append_live(maps_.ip_blocks(), now, out), append_live(maps_.identity_blocks(), now, out),
        append_live(maps_.pair_blocks(), now, out), append_live(maps_.connection_blocks(), now, out)})
    if (!ok)
      return make_error(ok.error());
  return out;
}

Result<void> MapEnforcer::collect_garbage()
{
  const std::uint64_t now = kernel::monotonic_now_ns();
  std::lock_guard lock(mutex_);
  // Failed writes: retried until they succeed or the block they carry would have ended anyway.
  std::vector<Pending> still;
  for (const auto &p : pending_) {
    if (!kernel::block_live(p.value, now))
      continue;
    if (write(p.target, p.value)) {
      ++stats_.written;
      fmt::print(stderr, "riskgated: block {} written on retry\n", describe(p.target));
    } else {
      ++stats_.retried;
      still.push_back(p);
    }
  }
  pending_ = std::move(still);
  auto removed = maps_.remove_expired_blocks();
  if (!removed)
    return make_error(fmt::format("enforcement GC: {}", removed.error()));
  stats_.gc_removed += *removed;
  // Expired blocks leave sticky SK_DROP sockets behind: release them so the drop ends with the block.
  auto released = maps_.release_unblocked_sockets();
  if (!released)
    return make_error(fmt::format("enforcement GC: {}", released.error()));
  stats_.sockets_released += *released;
  // Last, as the least urgent: an ended grace left in the map is ignored anyway.
  if (auto ended = maps_.remove_ended_graces(now); !ended)
    return make_error(fmt::format("enforcement GC: {}", ended.error()));
  return {};
}

void MapEnforcer::start()
{
  gc_thread_ = std::thread([this] {
    name_this_thread("rg-enforce");
    std::unique_lock lock(gc_mutex_);
    while (!gc_wake_.wait_for(lock, options_.gc_interval, [this] { return stopping_; })) {
      lock.unlock();
      if (auto ok = collect_garbage(); !ok)
        fmt::print(stderr, "riskgated: {}\n", ok.error());
      lock.lock();
    }
  });
}

Stats MapEnforcer::stats() const
{
  std::lock_guard lock(mutex_);
  Stats copy = stats_;
  copy.pending = pending_.size();
  return copy;
}

void MapEnforcer::watch(metrics::Registry &registry)
{
  auto &active_blocks =
      registry.gauge_family("riskgate_active_blocks", "Blocks in force, by scope", {"scope"});
  auto &actions =
      registry.counter_family("riskgate_enforce_total",
                              "Enforcement outcomes (written, extended, deduplicated, suppressed, "
                              "unblocked, retried, failed, map_full, gc_removed, sockets_released)",
                              {"outcome"});
  auto &pending = registry.gauge("riskgate_enforce_pending", "Failed block writes still being retried");
  auto &kernel_counts = registry.counter_family(
      "riskgate_kernel_total", "Kernel datapath counters by reason (rg_counters)", {"reason"});
  auto &ringbuf = registry.counter("riskgate_ringbuf_dropped_total",
                                   "Kernel events lost because the ring buffer was full");
  registry.add_collector([this, &active_blocks, &actions, &pending, &kernel_counts, &ringbuf] {
    if (auto blocks = active(); blocks.ok()) {
      std::map<std::string, double> by_scope = {{"ip", 0}, {"identity", 0}, {"pair", 0}, {"connection", 0}};
      for (const auto &b : *blocks) by_scope[to_string(b.target.scope)] += 1;
      for (const auto &[scope, n] : by_scope) active_blocks.with({scope}).set(n);
    }
    const Stats s = stats();
    const std::pair<const char *, std::uint64_t> outcomes[] = {{"written", s.written},
                                                               {"extended", s.extended},
                                                               {"deduplicated", s.deduplicated},
                                                               {"suppressed", s.suppressed},
                                                               {"unblocked", s.unblocked},
                                                               {"retried", s.retried},
                                                               {"failed", s.failed},
                                                               {"map_full", s.map_full},
                                                               {"gc_removed", s.gc_removed},
                                                               {"sockets_released", s.sockets_released}};
    for (const auto &[name, value] : outcomes) actions.with({name}).set_total(value);
    pending.set(static_cast<double>(s.pending));
    if (auto counters = maps_.counters(); counters.ok()) {
      for (std::uint32_t reason = 1; reason < RG_R_MAX; ++reason)
        if ((*counters)[reason] != 0)
          kernel_counts.with({reason_name(reason)}).set_total((*counters)[reason]);
      ringbuf.set_total((*counters)[RG_R_RINGBUF_FULL]);
    }
  });
}

}  // namespace riskgate::enforce
