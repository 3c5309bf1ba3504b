#include "map_io.h"

#include <cerrno>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <riskgate/common/errors.h>

namespace riskgate::kernel {

namespace {

// Reads the map in batches; false when the map type has no batch support (then nothing was read).
Result<bool> read_batches(const PinnedMaps &maps, MapId id, std::size_t key_size, std::size_t value_size,
                          std::size_t batch, std::vector<unsigned char> &keys,
                          std::vector<unsigned char> &values)
{
  alignas(8) unsigned char token[64] = {};  // opaque position (a bucket index for hash maps)
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (bool first = true;; first = false) {
    const std::size_t at = keys.size() / key_size;
    keys.resize((at + batch) * key_size);
    values.resize((at + batch) * value_size);
    auto count = static_cast<std::uint32_t>(batch);
    const int rc =
        ::bpf_map_lookup_batch(maps.fd(id), first ? nullptr : token, token, keys.data() + at * key_size,
                               values.data() + at * value_size, &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    keys.resize((at + (err == 0 || err == ENOENT ? count : 0)) * key_size);
    values.resize(keys.size() / key_size * value_size);
    if (err == ENOENT)
      return true;
    if (err == 0)
      continue;
    if (first && (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */))
      return false;
    return make_error(fmt::format("read {}: {}", map_name(id), errno_text(err)));
  }
}

Result<void> walk_keys(const PinnedMaps &maps, MapId id, std::size_t key_size, std::size_t value_size,
                       std::vector<unsigned char> &keys, std::vector<unsigned char> &values)
{
  std::vector<unsigned char> key(key_size), next(key_size), value(value_size);
  const void *prev = nullptr;
  while (::bpf_map_get_next_key(maps.fd(id), prev, next.data()) == 0) {
    if (::bpf_map_lookup_elem(maps.fd(id), next.data(), value.data()) == 0) {
      keys.insert(keys.end(), next.begin(), next.end());
      values.insert(values.end(), value.begin(), value.end());
    }
    key = next;
    prev = key.data();
  }
  if (errno != ENOENT)
    return make_error(fmt::format("iterate {}: {}", map_name(id), errno_text(errno)));
  return {};
}

}  // namespace

Result<void> update_entry(const PinnedMaps &maps, MapId id, const void *key, const void *value)
{
  if (::bpf_map_update_elem(maps.fd(id), key, value, BPF_ANY) != 0)
    return make_error(fmt::format("update {}: {}", map_name(id), errno_text(errno)));
  return {};
}

Result<bool> delete_entry(const PinnedMaps &maps, MapId id, const void *key)
{
  if (::bpf_map_delete_elem(maps.fd(id), key) == 0)
    return true;
  if (errno == ENOENT)
    return false;
  return make_error(fmt::format("delete from {}: {}", map_name(id), errno_text(errno)));
}

Result<bool> lookup_entry(const PinnedMaps &maps, MapId id, const void *key, void *value)
{
  if (::bpf_map_lookup_elem(maps.fd(id), key, value) == 0)
    return true;
  if (errno == ENOENT)
    return false;
  return make_error(fmt::format("lookup in {}: {}", map_name(id), errno_text(errno)));
}

Result<void> read_entries(const PinnedMaps &maps, MapId id, std::size_t key_size, std::size_t value_size,
                          std::size_t batch, std::vector<unsigned char> &keys,
                          std::vector<unsigned char> &values)
{
  auto batched = read_batches(maps, id, key_size, value_size, batch, keys, values);
  if (!batched)
    return make_error(batched.error());
  if (*batched)
    return {};
  return walk_keys(maps, id, key_size, value_size, keys, values);
}

}  // namespace riskgate::kernel
