// Enforcer over the datapath's pinned block maps. The maps are the state: nothing is cached that a
// restart or riskgatectl could make stale, so the agent's view after a restart is simply the maps.
//
//  - de-duplication: a block whose target is already blocked at least as long costs one lookup and
//    no write; a longer one extends the entry in place;
//  - manual unblock wins: after an operator unblocks a target, automatic blocks of it are ignored
//    (and counted) for `manual_grace`. The grace is an entry in the pinned rg_grace map, so it holds
//    across an agent restart and riskgatectl sets it whether or not an agent runs;
//  - expiry is the kernel's (CLOCK_MONOTONIC deadline in the entry); the GC pass only tidies: it
//    removes expired entries, releases sockets sk_msg dropped on once their block is gone, retries
//    failed writes;
//  - a full map: expired entries are evicted and the write retried; a live block is never evicted.
//    A write that still fails is returned as an error, logged, counted, and retried by GC until the
//    block would have expired.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <riskgate/enforce/enforce.h>
#include <riskgate/admin/metrics.h>

#include <riskgate/kernel/pinned_maps.h>

namespace riskgate::enforce {

struct Options {
  std::chrono::milliseconds manual_grace{std::chrono::minutes(10)};
  std::chrono::milliseconds gc_interval{std::chrono::seconds(1)};
  unsigned attempts = 3;  // immediate tries per write before it is left to GC
};

struct Stats {
  std::uint64_t written = 0;       // map writes that created or extended a block
  std::uint64_t extended = 0;      // of those, extensions of a live block
  std::uint64_t deduplicated = 0;  // blocks already in force at least as long: no write
  std::uint64_t suppressed = 0;    // automatic blocks ignored after a manual unblock
  std::uint64_t unblocked = 0;
  std::uint64_t retried = 0;     // extra write attempts
  std::uint64_t failed = 0;      // writes that failed every immediate attempt
  std::uint64_t map_full = 0;    // writes refused because the map was full
  std::uint64_t gc_removed = 0;  // expired entries removed
  std::uint64_t sockets_released = 0;
  std::size_t pending = 0;  // failed writes GC is still retrying
};

struct ActiveBlock {
  BlockTarget target;
  rg_block_val value;
};

class MapEnforcer final : public Enforcer {
 public:
  explicit MapEnforcer(kernel::PinnedMaps &maps, Options options = {});
  ~MapEnforcer() override;
  MapEnforcer(const MapEnforcer &) = delete;
  MapEnforcer &operator=(const MapEnforcer &) = delete;

  Result<void> block(const BlockRequest &request) override;
  Result<void> unblock(const BlockTarget &target, bool manual) override;
  // unblock() that says whether there was a block to remove.
  Result<bool> remove(const BlockTarget &target, bool manual);

  // A target (by describe()) that another process unblocked: riskgatectl, which has set the grace in
  // the map, tells the agent through the admin socket command "manual_unblock" so that a failed
  // block write the agent is still retrying for it is dropped.
  void hold_off(const std::string &target);

  // Every block in force, read from the maps (ip, identity, pair, connection).
  Result<std::vector<ActiveBlock>> active() const;
  // One GC pass; start() runs it every gc_interval on a thread.
  Result<void> collect_garbage();
  void start();
  Stats stats() const;
  // Active blocks by scope, enforcement counters, kernel counters by reason and ring-buffer drops.
  void watch(metrics::Registry &registry);

 private:
  Result<std::optional<rg_block_val>> lookup(const BlockTarget &target) const;
  Result<void> write(const BlockTarget &target, const rg_block_val &value);
  Result<void> write_with_retries(const BlockTarget &target, const rg_block_val &value);

  kernel::PinnedMaps &maps_;
  const Options options_;
  mutable std::mutex mutex_;  // stats_, pending_; serialises read-modify-write of entries
  Stats stats_;
  struct Pending {
    BlockTarget target;
    rg_block_val value;
  };
  std::vector<Pending> pending_;
  std::mutex gc_mutex_;
  std::condition_variable gc_wake_;
  bool stopping_ = false;
  std::thread gc_thread_;
};

}  // namespace riskgate::enforce
