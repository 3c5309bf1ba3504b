#include "block_hints.h"

#include <cstring>
#include <vector>

#include "block_scopes.h"
#include "map_io.h"

namespace riskgate::kernel {

namespace {

constexpr MapId kHintArrays[] = {MapId::blk_hint, MapId::blk_iphint};

// The slots of each hint array some block needs.
struct NeededSlots {
  std::vector<bool> identity = std::vector<bool>(RG_HINT_SLOTS);
  std::vector<bool> ip = std::vector<bool>(RG_HINT_SLOTS);

  std::vector<bool> &of(MapId array) { return array == MapId::blk_hint ? identity : ip; }
  void add(const HintSlots &slots)
  {
    auto &needed = of(slots.array);
    for (std::uint32_t slot = slots.first; slot < slots.last; ++slot) needed[slot] = true;
  }
};

template <class Key>
Result<void> add_needed(const PinnedMaps &maps, NeededSlots &needed)
{
  using Scope = BlockScope<Key>;
  auto all = entries<typename Scope::KernelKey, rg_block_val>(maps, Scope::kMap);
  if (!all)
    return make_error(all.error());
  for (const auto &entry : *all) needed.add(Scope::hint_slots(entry.first));
  return {};
}

Result<NeededSlots> needed_slots(const PinnedMaps &maps)
{
  NeededSlots needed;
  for (auto ok : {add_needed<net::IpPrefix>(maps, needed), add_needed<IdentityId>(maps, needed),
                  add_needed<PortKey>(maps, needed)})
    if (!ok)
      return make_error(ok.error());
  return needed;
}

Result<void> put_hint(const PinnedMaps &maps, MapId array, std::uint32_t slot, std::uint32_t value)
{
  return put(maps, array, slot, value);
}

// Clears the set slots of `array` that `needed` does not name.
Result<void> clear_unneeded(const PinnedMaps &maps, MapId array, const std::vector<bool> &needed)
{
  auto hints = entries<std::uint32_t, std::uint32_t>(maps, array, RG_HINT_SLOTS);
  if (!hints)
    return make_error(hints.error());
  for (const auto &[slot, hint] : *hints)
    if (hint != 0 && slot < RG_HINT_SLOTS && !needed[slot])
      if (auto ok = put_hint(maps, array, slot, 0); !ok)
        return ok;
  return {};
}

}  // namespace

HintSlots identity_hint_slots(IdentityId identity)
{
  const std::uint32_t slot = identity & RG_HINT_MASK;
  return {MapId::blk_hint, slot, slot + 1};
}

HintSlots ip_hint_slots(const rg_lpm_key &key)
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
      return {MapId::blk_iphint, 0, RG_HINT_SLOTS};
    base = std::uint32_t{key.addr[0]} << 8 | key.addr[1];
  }
  if (len >= RG_IP_HINT_BITS)
    return {MapId::blk_iphint, base, base + 1};
  const std::uint32_t span = 1u << (RG_IP_HINT_BITS - len);
  base &= ~(span - 1);
  return {MapId::blk_iphint, base, base + span};
}

Result<void> set_hints(const PinnedMaps &maps, const HintSlots &slots)
{
  for (std::uint32_t slot = slots.first; slot < slots.last; ++slot)
    if (auto ok = put_hint(maps, slots.array, slot, 1); !ok)
      return ok;
  return {};
}

Result<void> rebuild_block_hints(const PinnedMaps &maps)
{
  auto before = needed_slots(maps);
  if (!before)
    return make_error(before.error());
  for (MapId array : kHintArrays)
    if (auto ok = clear_unneeded(maps, array, before->of(array)); !ok)
      return ok;
  // A block written while we cleared: its writer sets the hint again after its write, unless that
  // write came before this second read, which then finds it.
  auto after = needed_slots(maps);
  if (!after)
    return make_error(after.error());
  for (MapId array : kHintArrays) {
    const auto &was = before->of(array);
    const auto &now = after->of(array);
    for (std::uint32_t slot = 0; slot < RG_HINT_SLOTS; ++slot)
      if (now[slot] && !was[slot])
        if (auto ok = put_hint(maps, array, slot, 1); !ok)
          return ok;
  }
  return {};
}

}  // namespace riskgate::kernel
