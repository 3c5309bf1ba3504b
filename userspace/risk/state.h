// What the engine learns as traffic flows, per subject (an identity, or an unknown peer's address) and
// per token fingerprint. Fixed-size records in bounded tables: a table full of live entries evicts
// the least recently used one, entries idle past their expiry are dropped first, both counted.
// Sharded by key with one lock per shard, so workers contend only when they touch the same shard.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include <riskgate/common/decision.h>

namespace riskgate::risk {

inline std::uint64_t mix64(std::uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline std::uint64_t hash_bytes(const void *data, std::size_t size, std::uint64_t seed = 0)
{
  const auto *p = static_cast<const unsigned char *>(data);
  std::uint64_t h = mix64(seed ^ size ^ 0x9e3779b97f4a7c15ULL);
  while (size >= 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, p, 8);
    h = mix64(h ^ chunk) + 0x9e3779b97f4a7c15ULL;
    p += 8;
    size -= 8;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p, size);
  return mix64(h ^ tail ^ (static_cast<std::uint64_t>(size) << 56));
}

inline std::uint64_t hash_string(std::string_view s, std::uint64_t seed = 0)
{
  return hash_bytes(s.data(), s.size(), seed);
}

// Requests per second against an exponentially weighted mean and variance of past seconds.
struct RateStat {
  std::uint64_t second = 0;
  std::uint32_t count = 0;  // requests in `second`, so far
  float mean = 0;
  float var = 0;

  void add(std::uint64_t now_ns, float alpha)
  {
    const std::uint64_t s = now_ns / 1'000'000'000;
    if (s != second) {
      if (second != 0) {
        fold(static_cast<float>(count), alpha);
        fold_zeros(s - second - 1, alpha);
      }
      second = s;
      count = 0;
    }
    ++count;
  }
  void fold(float x, float alpha)
  {
    const float d = x - mean;
    mean += alpha * d;
    var = (1 - alpha) * (var + alpha * d * d);
  }
  // `seconds` idle seconds (each a zero) at once: with r = 1 - alpha, k zeros take the mean to
  // r^k * mean and the variance to r^k * (var + mean^2 * (1 - r^k)).
  void fold_zeros(std::uint64_t seconds, float alpha)
  {
    if (seconds == 0)
      return;
    const float rk = seconds > 100000 ? 0.0f : std::pow(1 - alpha, static_cast<float>(seconds));
    var = rk * (var + mean * mean * (1 - rk));
    mean *= rk;
  }
  // Standard deviations above the mean. The deviation is floored at Poisson noise (sqrt of the mean,
  // at least 1), so a quiet identity's second request in a second is not an outlier.
  double z() const
  {
    const double sd = std::max(std::sqrt(static_cast<double>(var)), std::sqrt(std::max<double>(mean, 1)));
    return (count - mean) / sd;
  }
};

// A count over a sliding window, estimated from the current and the previous fixed window.
struct WindowCount {
  std::uint64_t start = 0;
  float current = 0;
  float previous = 0;

  void roll(std::uint64_t now, std::uint64_t window)
  {
    if (start == 0 || now - start >= 2 * window) {
      previous = 0;
      current = 0;
      start = now;
    } else if (now - start >= window) {
      previous = current;
      current = 0;
      start += window;
    }
  }
  void add(std::uint64_t now, std::uint64_t window, float amount = 1)
  {
    roll(now, window);
    current += amount;
  }
  double estimate(std::uint64_t now, std::uint64_t window)
  {
    roll(now, window);
    const double elapsed = static_cast<double>(now - start) / static_cast<double>(window);
    return previous * (1 - elapsed) + current;
  }
};

// Endpoints (hashes of service, method, route template) a subject has called. Open addressing in a
// fixed array: an identity that calls more than kLimit distinct endpoints stops learning new ones
// rather than growing without bound, and evicts none, so a scanner flooding it can neither push the
// known endpoints out nor make its own probes known: what a full set does not hold stays new.
struct EndpointSet {
  static constexpr unsigned kSlots = 128;
  static constexpr unsigned kLimit = 96;
  std::uint64_t keys[kSlots] = {};
  std::uint16_t size = 0;

  enum class Seen { known, added, full };
  Seen insert(std::uint64_t key)
  {
    key |= 1;  // 0 marks an empty slot
    for (unsigned i = 0, pos = static_cast<unsigned>(key >> 40) % kSlots; i < kSlots;
         ++i, pos = (pos + 1) % kSlots) {
      if (keys[pos] == key)
        return Seen::known;
      if (keys[pos] == 0) {
        if (size >= kLimit)
          return Seen::full;
        keys[pos] = key;
        ++size;
        return Seen::added;
      }
    }
    return Seen::full;
  }
};

// The last kSize decisions that found a new endpoint. The proxy reports an exchange by its decision
// id, so this is how its status is known to be a new endpoint's. kSize covers the requests a subject
// usually has in flight at once; the failure of an older one goes uncounted.
struct RecentDecisions {
  static constexpr unsigned kSize = 4;
  std::uint64_t ids[kSize] = {};
  std::uint32_t next = 0;

  void remember(std::uint64_t id) { ids[next++ % kSize] = id; }
  bool contains(std::uint64_t id) const { return id != 0 && std::find(ids, ids + kSize, id) != ids + kSize; }
};

struct SubjectState {
  std::uint64_t first_ns = 0;
  RateStat rate;
  EndpointSet endpoints;
  WindowCount novel;           // novel endpoints within the scan window
  WindowCount novel_failures;  // ... whose first exchange ended 401/403/404
  RecentDecisions novel_decisions;
  WindowCount discovered;  // endpoints first seen within the scan window while still learning
  WindowCount requests;    // completed exchanges within the failure window
  WindowCount failures;    // ... of which 401/403/404
  float payload_mean = 0;  // of ln(1 + body bytes)
  float payload_var = 0;
  std::uint32_t payload_samples = 0;
  double bucket_tokens = -1;  // limit band token bucket; < 0 = full, not yet used
  std::uint64_t bucket_ns = 0;
  std::uint64_t block_until_ns = 0;
  std::uint64_t block_key = 0;
  std::uint64_t block_decision = 0;
  std::uint32_t offenses = 0;  // blocks so far, for escalation
};

struct TokenState {
  // One place the token is presented from. Its rate is the (identity, token) baseline, kept per
  // origin so that a stolen token's use elsewhere neither feeds nor hides behind its owner's, in
  // the record the roaming check reads anyway (no second lookup per request).
  struct Origin {
    std::uint32_t identity = 0;
    std::uint32_t address = 0;  // hash of the source address
    std::uint64_t last_ns = 0;
    std::uint64_t first_ns = 0;
    RateStat rate;
  };
  static constexpr unsigned kOrigins = 4;
  Origin origins[kOrigins];
};

// Bounded LRU map from 64-bit key (already a hash) to State. Slots live in fixed chunks, so growth
// never moves a record or pauses to copy; the index is linear probing with backward-shift deletion.
template <class State>
class LruTable {
 public:
  explicit LruTable(std::size_t capacity)
      : capacity_(static_cast<std::uint32_t>(std::max<std::size_t>(capacity, 1)))
  {
    std::size_t index_size = 16;
    while (index_size < 2 * static_cast<std::size_t>(capacity_)) index_size *= 2;
    index_.assign(index_size, kNil);
    mask_ = static_cast<std::uint32_t>(index_size - 1);
  }

  // The state of `key`, created (fresh State) when absent; marks it most recently used.
  State &touch(std::uint64_t key, std::uint64_t now_ns, std::uint64_t idle_ns, bool &created)
  {
    std::uint32_t pos = home(key);
    for (; index_[pos] != kNil; pos = (pos + 1) & mask_) {
      Slot &s = slot(index_[pos]);
      if (s.key == key) {
        created = false;
        s.last_ns = now_ns;
        // Moving to the front writes two neighbours (two more cache misses), so a busy entry moves
        // at most once per kRefreshNs: the eviction order is least recently used to within that.
        if (now_ns - s.moved_ns >= kRefreshNs) {
          s.moved_ns = now_ns;
          to_front(index_[pos]);
        }
        return s.state;
      }
    }
    created = true;
    for (int i = 0; i < 2 && tail_ != kNil && slot(tail_).last_ns + idle_ns < now_ns; ++i) {
      remove(tail_);
      ++expired_;
    }
    if (size_ >= capacity_) {
      remove(tail_);
      ++evicted_;
    }
    const std::uint32_t id = allocate();
    Slot &s = slot(id);
    s.key = key;
    s.last_ns = now_ns;
    s.moved_ns = now_ns;
    s.state = State{};
    link_front(id);
    pos = home(key);
    while (index_[pos] != kNil) pos = (pos + 1) & mask_;
    index_[pos] = id;
    ++size_;
    return s.state;
  }

  // The index never moves after construction, so its slot for `key` can be pulled into cache
  // before the lock is taken, overlapping the likely miss with other work.
  void prefetch(std::uint64_t key) const { __builtin_prefetch(&index_[home(key)]); }

  std::size_t size() const { return size_; }
  std::uint64_t evicted() const { return evicted_; }
  std::uint64_t expired() const { return expired_; }
  std::size_t bytes() const
  {
    return chunks_.size() * kChunk * sizeof(Slot) + index_.size() * sizeof(std::uint32_t);
  }

 private:
  static constexpr std::uint32_t kNil = UINT32_MAX;
  static constexpr std::uint64_t kRefreshNs = 1'000'000'000;
  static constexpr std::uint32_t kChunkBits = 8;
  static constexpr std::uint32_t kChunk = 1u << kChunkBits;
  struct Slot {
    std::uint64_t key = 0;
    std::uint64_t last_ns = 0;
    std::uint64_t moved_ns = 0;  // when it last moved to the front of the LRU list
    std::uint32_t prev = kNil;
    std::uint32_t next = kNil;
    State state;
  };

  std::uint32_t home(std::uint64_t key) const { return static_cast<std::uint32_t>(key >> 20) & mask_; }
  Slot &slot(std::uint32_t id) { return chunks_[id >> kChunkBits][id & (kChunk - 1)]; }

  std::uint32_t allocate()
  {
    if (free_ != kNil) {
      const std::uint32_t id = free_;
      free_ = slot(id).next;
      return id;
    }
    if (allocated_ == chunks_.size() * kChunk)
      chunks_.push_back(std::make_unique<Slot[]>(kChunk));
    return allocated_++;
  }

  void unlink(std::uint32_t id)
  {
    Slot &s = slot(id);
    (s.prev != kNil ? slot(s.prev).next : head_) = s.next;
    (s.next != kNil ? slot(s.next).prev : tail_) = s.prev;
  }
  void link_front(std::uint32_t id)
  {
    Slot &s = slot(id);
    s.prev = kNil;
    s.next = head_;
    if (head_ != kNil)
      slot(head_).prev = id;
    head_ = id;
    if (tail_ == kNil)
      tail_ = id;
  }
  void to_front(std::uint32_t id)
  {
    if (head_ == id)
      return;
    unlink(id);
    link_front(id);
  }

  void remove(std::uint32_t id)
  {
    const std::uint64_t key = slot(id).key;
    std::uint32_t pos = home(key);
    while (index_[pos] != id) pos = (pos + 1) & mask_;
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    for (;;) {
      index_[pos] = kNil;
      std::uint32_t next = pos;
      for (;;) {
        next = (next + 1) & mask_;
        if (index_[next] == kNil) {
          unlink(id);
          slot(id).next = free_;
          free_ = id;
          --size_;
          return;
        }
        const std::uint32_t want = home(slot(index_[next]).key);
        const bool stays = pos <= next ? (pos < want && want <= next) : (pos < want || want <= next);
        if (!stays)
          break;
      }
      index_[pos] = index_[next];
      pos = next;
    }
  }

  std::uint32_t capacity_;
  std::uint32_t mask_ = 0;
  std::vector<std::uint32_t> index_;
  std::vector<std::unique_ptr<Slot[]>> chunks_;
  std::uint32_t allocated_ = 0;
  std::uint32_t free_ = kNil;
  std::uint32_t head_ = kNil;  // most recently used
  std::uint32_t tail_ = kNil;  // least recently used
  std::uint32_t size_ = 0;
  std::uint64_t evicted_ = 0;
  std::uint64_t expired_ = 0;
};

template <class State>
class ShardedTable {
 public:
  struct Totals {
    std::uint64_t size = 0, evicted = 0, expired = 0, bytes = 0;
  };

  ShardedTable(std::size_t capacity, unsigned shards, std::uint64_t idle_ns) : idle_ns_(idle_ns)
  {
    unsigned count = 1;
    while (count < shards) count *= 2;
    mask_ = count - 1;
    for (unsigned i = 0; i < count; ++i)
      shards_.push_back(std::make_unique<Shard>((capacity + count - 1) / count));
  }

  // Runs fn(State &, bool created) under the shard's lock.
  template <class Fn>
  auto with(std::uint64_t key, std::uint64_t now_ns, Fn &&fn)
  {
    Shard &shard = *shards_[key & mask_];
    std::lock_guard lock(shard.mutex);
    bool created = false;
    State &state = shard.table.touch(key, now_ns, idle_ns_, created);
    return fn(state, created);
  }

  void prefetch(std::uint64_t key) const { shards_[key & mask_]->table.prefetch(key); }

  Totals totals() const
  {
    Totals t;
    for (const auto &shard : shards_) {
      std::lock_guard lock(shard->mutex);
      t.size += shard->table.size();
      t.evicted += shard->table.evicted();
      t.expired += shard->table.expired();
      t.bytes += shard->table.bytes();
    }
    return t;
  }

 private:
  struct alignas(64) Shard {
    explicit Shard(std::size_t capacity) : table(capacity) {}
    mutable std::mutex mutex;
    LruTable<State> table;
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  unsigned mask_ = 0;
  std::uint64_t idle_ns_;
};

}  // namespace riskgate::risk
