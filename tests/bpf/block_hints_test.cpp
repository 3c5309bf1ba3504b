// Block hints (abi.h RG_HINT_*) under concurrency: writers set a block's hint slots before and after
// writing it, and rebuild_block_hints clears the slots no block needs, also while writers add and
// remove blocks. Whenever no write and no rebuild is in flight, every live block must have its slots
// set, or the XDP program (which looks a block up only behind its hint) lets its traffic through;
// and once every block is gone, a rebuild leaves no slot set.
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <riskgate/kernel/pinned_maps.h>
#include "bpf/xdp_harness.h"
#include "kernel/block_hints.h"
#include "kernel/map_io.h"

using namespace riskgate;
using namespace riskgate::test;
using namespace std::chrono_literals;

namespace {

const rg_block_val kNever = kernel::block_value(0ms, 1);

// A block one writer adds and removes, and a packet XDP must drop while the block is live.
struct Target {
  std::string name;
  std::function<Result<void>(kernel::PinnedMaps &)> put;
  std::function<Result<bool>(kernel::PinnedMaps &)> remove;
  Packet packet;
  std::optional<std::pair<net::IpPrefix, IdentityId>> owner;  // ipcache entry naming the source
  bool live = false;  // written by its writer; read by the checker only while writers wait
};

net::IpPrefix prefix(const std::string &text)
{
  return *net::parse_prefix(text);
}

// The block `key` in the table `table` of PinnedMaps names.
template <class Key>
Target target(std::string name, kernel::BlockTable<Key> (kernel::PinnedMaps::*table)(), Key key,
              Packet packet, std::optional<std::pair<net::IpPrefix, IdentityId>> owner = std::nullopt)
{
  return {std::move(name), [=](kernel::PinnedMaps &m) { return (m.*table)().put(key, kNever); },
          [=](kernel::PinnedMaps &m) { return (m.*table)().remove(key); }, std::move(packet),
          std::move(owner)};
}

Target ip_target(const std::string &cidr, const std::string &source)
{
  const bool v6 = source.find(':') != std::string::npos;
  return target(fmt::format("ip {}", cidr), &kernel::PinnedMaps::ip_blocks, prefix(cidr),
                v6 ? ipv6(source.c_str()) : ipv4(source.c_str()));
}

// Identity `id` owns 172.<b>.<c>.0/24; its packets come from .9 in it.
Target identity_target(IdentityId id, int b, int c)
{
  const auto subnet = fmt::format("172.{}.{}", b, c);
  return target(fmt::format("identity {}", id), &kernel::PinnedMaps::identity_blocks, id,
                ipv4((subnet + ".9").c_str()), std::pair{prefix(subnet + ".0/24"), id});
}

Target port_target(IdentityId id, int b, int c)
{
  const auto subnet = fmt::format("172.{}.{}", b, c);
  return target(fmt::format("identity {} port 443", id), &kernel::PinnedMaps::port_blocks,
                kernel::PortKey{id, 443, IPPROTO_TCP},
                ipv4((subnet + ".9").c_str(), {IPPROTO_TCP, 443, true}),
                std::pair{prefix(subnet + ".0/24"), id});
}

// Blocks that share hint slots (removing one must leave the slot to the others) and blocks alone
// in theirs, per writer: IP prefixes; identities; ports of other identities in the same slots.
std::vector<std::vector<Target>> writers_targets()
{
  std::vector<Target> ips, ids, ports;
  for (int k = 0; k < 6; ++k) {
    ips.push_back(ip_target(fmt::format("10.{}.0.0/24", k), fmt::format("10.{}.0.7", k)));
    ips.push_back(ip_target(fmt::format("10.{}.1.0/24", k), fmt::format("10.{}.1.7", k)));
  }
  ips.push_back(ip_target("10.64.0.0/12", "10.70.3.7"));  // 16 slots
  ips.push_back(ip_target("10.72.5.0/24", "10.72.5.7"));  // one of them
  for (int k = 0; k < 4; ++k)                             // one slot (fd00) for all four
    ips.push_back(ip_target(fmt::format("fd00:{}::/48", k + 1), fmt::format("fd00:{}::7", k + 1)));
  constexpr IdentityId kSlotStride = RG_HINT_SLOTS;
  for (int n = 0; n < 8; ++n) {
    ids.push_back(identity_target(1000 + n, 16, n));
    ports.push_back(port_target(2000 + n, 18, n));
  }
  for (int n = 0; n < 4; ++n) {
    ids.push_back(identity_target(1000 + n + kSlotStride, 17, n));
    ports.push_back(port_target(1000 + n + 2 * kSlotStride, 19, n));
  }
  return {std::move(ips), std::move(ids), std::move(ports)};
}

// The names of the live blocks whose packet the XDP program does not drop.
std::vector<std::string> unenforced(XdpGate &gate, const std::vector<std::vector<Target>> &writers)
{
  std::vector<std::string> out;
  for (const auto &targets : writers)
    for (const auto &target : targets)
      if (target.live && gate.run(target.packet) != XDP_DROP)
        out.push_back(target.name);
  return out;
}

std::size_t set_hint_slots(const kernel::PinnedMaps &maps, kernel::MapId array)
{
  auto hints = kernel::entries<std::uint32_t, std::uint32_t>(maps, array, RG_HINT_SLOTS);
  REQUIRE_MESSAGE(hints.ok(), hints.error());
  std::size_t set = 0;
  for (const auto &[slot, hint] : *hints) set += hint != 0 ? 1 : 0;
  return set;
}

// Rounds of writers and a rebuilder running together, each ending with every thread waiting while
// the checker looks.
class Race {
 public:
  Race(kernel::PinnedMaps &maps, std::vector<std::vector<Target>> &writers)
      : maps_(maps), sync_(static_cast<std::ptrdiff_t>(writers.size() + 2))
  {
    for (std::size_t w = 0; w < writers.size(); ++w)
      threads_.emplace_back(
          [this, &targets = writers[w], w] { run_writer(targets, static_cast<unsigned>(w)); });
    threads_.emplace_back([this] { run_rebuilder(); });
  }
  ~Race()
  {
    done_ = true;
    sync_.arrive_and_wait();
    for (auto &thread : threads_) thread.join();
  }

  // Lets every thread work for `length`; returns once they all wait again.
  void round(std::chrono::milliseconds length)
  {
    running_ = true;
    sync_.arrive_and_wait();
    std::this_thread::sleep_for(length);
    running_ = false;
    sync_.arrive_and_wait();
  }
  std::string error() const
  {
    std::lock_guard lock(mutex_);
    return error_;
  }
  unsigned rebuilds() const { return rebuilds_; }
  unsigned toggles() const { return toggles_; }

 private:
  template <class Work>
  void rounds(Work work)
  {
    for (;;) {
      sync_.arrive_and_wait();
      if (done_)
        return;
      while (running_) work();
      sync_.arrive_and_wait();
    }
  }
  void run_writer(std::vector<Target> &targets, unsigned seed)
  {
    std::mt19937 random(seed);
    rounds([&] {
      Target &target = targets[random() % targets.size()];
      if (target.live) {
        target.live = false;
        note(target.remove(maps_));
      } else {
        note(target.put(maps_));
        target.live = true;
      }
      ++toggles_;
    });
  }
  void run_rebuilder()
  {
    rounds([&] {
      note(kernel::rebuild_block_hints(maps_));
      ++rebuilds_;
    });
  }
  template <class R>
  void note(const R &result)
  {
    if (result.ok())
      return;
    std::lock_guard lock(mutex_);
    if (error_.empty())
      error_ = result.error();
  }

  kernel::PinnedMaps &maps_;
  std::barrier<> sync_;
  std::atomic<bool> running_{false};
  std::atomic<bool> done_{false};
  std::atomic<unsigned> rebuilds_{0};
  std::atomic<unsigned> toggles_{0};
  mutable std::mutex mutex_;
  std::string error_;
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE("block hints: a rebuild racing writers never hides a live block from XDP")
{
  XdpGate gate;
  kernel::PinnedMaps &maps = gate.maps();
  auto writers = writers_targets();
  for (const auto &targets : writers)
    for (const auto &target : targets)
      if (target.owner)
        REQUIRE(maps.put_ipcache(target.owner->first, target.owner->second).ok());
  for (const auto &targets : writers)
    for (const auto &target : targets) {
      CAPTURE(target.name);
      REQUIRE(gate.run(target.packet) == XDP_PASS);  // a drop below is the block's doing
    }

  std::vector<std::string> missed;
  int round = 0;
  {
    Race race(maps, writers);
    for (; round < 30 && missed.empty() && race.error().empty(); ++round) {
      race.round(3ms);
      missed = unenforced(gate, writers);
    }
    MESSAGE(race.toggles(), " block writes and removals, ", race.rebuilds(), " rebuilds in ", round,
            " rounds");
    REQUIRE_MESSAGE(race.error().empty(), race.error());
  }
  CHECK_MESSAGE(missed.empty(), "after round ", round,
                " XDP let through: ", fmt::format("{}", fmt::join(missed, ", ")));

  REQUIRE(kernel::rebuild_block_hints(maps).ok());
  missed = unenforced(gate, writers);
  CHECK_MESSAGE(missed.empty(),
                "after the last rebuild XDP let through: ", fmt::format("{}", fmt::join(missed, ", ")));

  // With every block gone, a rebuild clears every slot: nothing stale is left to cost lookups.
  for (auto &targets : writers)
    for (auto &target : targets)
      if (target.live) {
        REQUIRE(*target.remove(maps));
        target.live = false;
      }
  REQUIRE(kernel::rebuild_block_hints(maps).ok());
  CHECK(set_hint_slots(maps, kernel::MapId::blk_hint) == 0);
  CHECK(set_hint_slots(maps, kernel::MapId::blk_iphint) == 0);
}
