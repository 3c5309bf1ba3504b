#include <riskgate/kernel/block_table.h>

#include <ctime>

#include "block_hints.h"
#include "block_scopes.h"
#include "map_io.h"

namespace riskgate::kernel {

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

template <class Key>
Result<void> BlockTable<Key>::put(const Key &key, const rg_block_val &value) const
{
  using Scope = BlockScope<Key>;
  if (auto ok = Scope::check_writable(key); !ok)
    return ok;
  auto kernel_key = Scope::kernel_key(key);
  if (!kernel_key)
    return make_error(kernel_key.error());
  // The hint before the write, so the kernel never meets a block it skips; again after it, in case
  // a concurrent rebuild cleared the slot in between (block_hints.h).
  if constexpr (Scope::kHinted)
    if (auto ok = set_hints(maps_, Scope::hint_slots(*kernel_key)); !ok)
      return ok;
  if (auto ok = kernel::put(maps_, Scope::kMap, *kernel_key, value); !ok)
    return ok;
  if constexpr (Scope::kHinted)
    return set_hints(maps_, Scope::hint_slots(*kernel_key));
  return {};
}

template <class Key>
Result<bool> BlockTable<Key>::remove(const Key &key) const
{
  using Scope = BlockScope<Key>;
  auto kernel_key = Scope::kernel_key(key);
  if (!kernel_key)
    return make_error(kernel_key.error());
  auto removed = kernel::remove(maps_, Scope::kMap, *kernel_key);
  if (!removed || !*removed)
    return removed;
  // The block is gone either way: a socket left dropping or a stale hint is retried by the next
  // housekeeping pass (and a stale hint costs only a lookup).
  if constexpr (Scope::kReleasesSockets)
    (void)maps_.release_unblocked_sockets();
  if constexpr (Scope::kHinted)
    (void)rebuild_block_hints(maps_);
  return removed;
}

template <class Key>
Result<std::optional<rg_block_val>> BlockTable<Key>::get(const Key &key) const
{
  using Scope = BlockScope<Key>;
  auto kernel_key = Scope::kernel_key(key);
  if (!kernel_key)
    return make_error(kernel_key.error());
  return lookup<rg_block_val>(maps_, Scope::kMap, *kernel_key);
}

template <class Key>
Result<std::vector<Block<Key>>> BlockTable<Key>::list() const
{
  using Scope = BlockScope<Key>;
  auto all = entries<typename Scope::KernelKey, rg_block_val>(maps_, Scope::kMap);
  if (!all)
    return make_error(all.error());
  std::vector<Block<Key>> out;
  out.reserve(all->size());
  for (const auto &[key, value] : *all) out.push_back({Scope::key_of(key), value});
  return out;
}

template class BlockTable<net::IpPrefix>;
template class BlockTable<IdentityId>;
template class BlockTable<PairKey>;
template class BlockTable<PortKey>;
template class BlockTable<std::uint64_t>;

namespace {

// Removes the expired entries of one block map; returns how many.
template <class Key>
Result<std::size_t> remove_expired(const PinnedMaps &maps, std::uint64_t now_ns)
{
  using Scope = BlockScope<Key>;
  auto all = entries<typename Scope::KernelKey, rg_block_val>(maps, Scope::kMap);
  if (!all)
    return make_error(all.error());
  std::size_t removed = 0;
  for (const auto &[key, value] : *all) {
    if (block_live(value, now_ns))
      continue;
    auto gone = kernel::remove(maps, Scope::kMap, key);
    if (!gone)
      return make_error(gone.error());
    removed += *gone ? 1 : 0;
  }
  return removed;
}

}  // namespace

Result<std::size_t> PinnedMaps::remove_expired_blocks()
{
  const std::uint64_t now = monotonic_now_ns();
  std::size_t removed = 0;
  for (auto swept : {remove_expired<net::IpPrefix>(*this, now), remove_expired<IdentityId>(*this, now),
                     remove_expired<PairKey>(*this, now), remove_expired<PortKey>(*this, now),
                     remove_expired<std::uint64_t>(*this, now)}) {
    if (!swept)
      return make_error(swept.error());
    removed += *swept;
  }
  if (removed > 0)
    if (auto ok = rebuild_block_hints(*this); !ok)
      return make_error(ok.error());
  return removed;
}

}  // namespace riskgate::kernel
