// Typed reads and writes of one pinned map, each error naming the map ("update rg_blk_id: ...").
// Keys and values are the kernel's structs (abi.h): the typed API above them converts.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include <riskgate/common/result.h>
#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::kernel {

Result<void> update_entry(const PinnedMaps &maps, MapId id, const void *key, const void *value);
// Whether an entry was there.
Result<bool> delete_entry(const PinnedMaps &maps, MapId id, const void *key);
// Whether the entry exists; `value` is filled when it does.
Result<bool> lookup_entry(const PinnedMaps &maps, MapId id, const void *key, void *value);
// Every entry, appended as raw bytes: key_size to `keys`, value_size to `values`. Hash maps (and
// arrays) are read `batch` entries a syscall; LPM tries cannot be, and are walked key by key,
// skipping entries deleted meanwhile.
Result<void> read_entries(const PinnedMaps &maps, MapId id, std::size_t key_size, std::size_t value_size,
                          std::size_t batch, std::vector<unsigned char> &keys,
                          std::vector<unsigned char> &values);

template <class K, class V>
Result<void> put(const PinnedMaps &maps, MapId id, const K &key, const V &value)
{
  return update_entry(maps, id, &key, &value);
}

template <class K>
Result<bool> remove(const PinnedMaps &maps, MapId id, const K &key)
{
  return delete_entry(maps, id, &key);
}

template <class V, class K>
Result<std::optional<V>> lookup(const PinnedMaps &maps, MapId id, const K &key)
{
  V value{};
  auto found = lookup_entry(maps, id, &key, &value);
  if (!found)
    return make_error(found.error());
  return *found ? std::optional<V>(value) : std::nullopt;
}

// Every (key, value) of the map. The default batch keeps one syscall per 1024 entries: the
// housekeeping sweeps every block map often.
template <class K, class V>
Result<std::vector<std::pair<K, V>>> entries(const PinnedMaps &maps, MapId id, std::size_t batch = 1024)
{
  std::vector<unsigned char> keys, values;
  if (auto ok = read_entries(maps, id, sizeof(K), sizeof(V), batch, keys, values); !ok)
    return make_error(ok.error());
  std::vector<std::pair<K, V>> out(keys.size() / sizeof(K));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::memcpy(&out[i].first, keys.data() + i * sizeof(K), sizeof(K));
    std::memcpy(&out[i].second, values.data() + i * sizeof(V), sizeof(V));
  }
  return out;
}

}  // namespace riskgate::kernel
