// Block hints (abi.h RG_HINT_SLOTS): the kernel looks a block hash up only when the hint slot of the
// identity or address is set, so a block the hints do not cover is not enforced. Writers set a
// block's slots before and after writing it; a rebuild clears the slots no block needs.
#pragma once

#include <cstdint>

#include <riskgate/abi.h>
#include <riskgate/common/identity.h>
#include <riskgate/common/result.h>
#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::kernel {

// Slots [first, last) of one hint array.
struct HintSlots {
  MapId array;
  std::uint32_t first;
  std::uint32_t last;
};

// The slot an identity's identity and port blocks need.
HintSlots identity_hint_slots(IdentityId identity);
// The slots an IP block key covers: the top 16 bits of the v4 address for v4-mapped keys, of the v6
// address otherwise; a shorter prefix covers a range, and a v6 prefix covering the v4-mapped space
// covers every slot.
HintSlots ip_hint_slots(const rg_lpm_key &key);
Result<void> set_hints(const PinnedMaps &maps, const HintSlots &slots);

// Clears the hint slots no IP, identity or port block needs any more. Safe against concurrent
// writers, which set the hint before and after writing their block: once both the writer and the
// rebuild are done, the block's slots are set.
Result<void> rebuild_block_hints(const PinnedMaps &maps);

}  // namespace riskgate::kernel
