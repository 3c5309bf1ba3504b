// The enforcer over real pinned maps and attached programs (a child cgroup, never the root): blocks
// refuse connect() in the kernel, repeated blocks are de-duplicated or extended, a manual unblock
// wins over automatic re-blocks, TTLs end in the kernel, a full map never loses a live block.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <doctest/doctest.h>

#include <riskgate/common/reasons.h>
#include <riskgate/enforce/map_enforcer.h>
#include <riskgate/kernel/datapath.h>
#include "support/kernel_env.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

constexpr IdentityId kClient = 11;

struct Lab {
  test::TempPinDir pins;
  test::ScopedCgroup cgroup;
  std::unique_ptr<kernel::Datapath> datapath;
  int listener = -1;
  std::uint16_t port = 0;

  explicit Lab(std::uint32_t block_entries = 1024)
  {
    kernel::DatapathConfig config;
    config.pin_root = pins.path();
    config.cgroup = cgroup.path();
    config.block_entries = block_entries;
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    datapath = std::move(*dp);
    REQUIRE(maps().put_cgroup(cgroup.id(), kClient).ok());
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 64) == 0);
    socklen_t len = sizeof addr;
    getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Lab() { ::close(listener); }
  kernel::PinnedMaps &maps() { return datapath->maps(); }

  // connect() from a process inside the lab cgroup: 0 or the errno it got.
  int connect_from_workload()
  {
    int go[2], result[2];
    REQUIRE(pipe(go) == 0);
    REQUIRE(pipe(result) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      char c;
      if (read(go[0], &c, 1) != 1)
        _exit(1);
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port);
      int err = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 ? 0 : errno;
      if (write(result[1], &err, sizeof err) != sizeof err)
        _exit(1);
      _exit(0);
    }
    cgroup.add_pid(pid);
    REQUIRE(write(go[1], "x", 1) == 1);
    int err = -1;
    REQUIRE(read(result[0], &err, sizeof err) == sizeof err);
    waitpid(pid, nullptr, 0);
    for (int fd : {go[0], go[1], result[0], result[1]}) ::close(fd);
    // Drain the accepted connection, if any, so the backlog never fills.
    if (err == 0) {
      const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (accepted >= 0)
        ::close(accepted);
    }
    return err;
  }
};

BlockRequest identity_block(IdentityId id, std::uint64_t ttl_ms, std::uint64_t decision, bool manual = false)
{
  BlockRequest r;
  r.target.scope = BlockScope::identity;
  r.target.identity = id;
  r.ttl_ms = ttl_ms;
  r.decision_id = decision;
  r.manual = manual;
  return r;
}

}  // namespace

TEST_CASE("a block refuses connect() in the kernel; unblock and TTL expiry lift it")
{
  Lab lab;
  enforce::MapEnforcer enforcer(lab.maps());
  CHECK(lab.connect_from_workload() == 0);

  REQUIRE(enforcer.block(identity_block(kClient, 0, 1)).ok());
  CHECK(lab.connect_from_workload() == EPERM);
  auto active = enforcer.active();
  REQUIRE(active.ok());
  REQUIRE(active->size() == 1);
  CHECK((*active)[0].target.identity == kClient);
  CHECK((*active)[0].value.decision_id == 1);

  REQUIRE(enforcer.unblock(identity_block(kClient, 0, 0).target, true).ok());
  CHECK(lab.connect_from_workload() == 0);

  // A manual block is not subject to the grace; its TTL is enforced by the kernel alone.
  REQUIRE(enforcer.block(identity_block(kClient, 300, 2, true)).ok());
  CHECK(lab.connect_from_workload() == EPERM);
  std::this_thread::sleep_for(400ms);
  CHECK(lab.connect_from_workload() == 0);
  CHECK(enforcer.active()->empty());
  REQUIRE(enforcer.collect_garbage().ok());
  CHECK(enforcer.stats().gc_removed == 1);
  CHECK(lab.maps().identity_blocks().list()->empty());
}

TEST_CASE("repeated blocks are de-duplicated or extended; a manual unblock wins for the grace period")
{
  Lab lab;
  enforce::Options options;
  options.manual_grace = 500ms;
  enforce::MapEnforcer enforcer(lab.maps(), options);

  REQUIRE(enforcer.block(identity_block(kClient, 60'000, 1)).ok());
  REQUIRE(enforcer.block(identity_block(kClient, 30'000, 2)).ok());  // shorter: nothing to do
  CHECK(enforcer.stats().deduplicated == 1);
  CHECK((*lab.maps().identity_blocks().get(kClient))->decision_id == 1);
  const auto first = (*lab.maps().identity_blocks().get(kClient))->expires_ns;
  REQUIRE(enforcer.block(identity_block(kClient, 120'000, 3)).ok());  // longer: extended in place
  CHECK(enforcer.stats().extended == 1);
  CHECK((*lab.maps().identity_blocks().get(kClient))->expires_ns > first);
  CHECK((*lab.maps().identity_blocks().get(kClient))->decision_id == 3);
  REQUIRE(enforcer.block(identity_block(kClient, 0, 4)).ok());  // until removed beats any TTL
  CHECK((*lab.maps().identity_blocks().get(kClient))->expires_ns == RG_EXPIRES_NEVER);

  auto removed = enforcer.remove(identity_block(kClient, 0, 0).target, true);
  REQUIRE(removed.ok());
  CHECK(*removed);
  REQUIRE(enforcer.block(identity_block(kClient, 0, 5)).ok());
  CHECK(enforcer.stats().suppressed == 1);
  CHECK(lab.connect_from_workload() == 0);
  CHECK_FALSE(lab.maps().identity_blocks().get(kClient)->has_value());
  // The grace is in the pinned maps: an agent started meanwhile (a restart) holds it too.
  enforce::MapEnforcer restarted(lab.maps(), options);
  REQUIRE(restarted.block(identity_block(kClient, 0, 55)).ok());
  CHECK(restarted.stats().suppressed == 1);
  CHECK_FALSE(lab.maps().identity_blocks().get(kClient)->has_value());

  std::this_thread::sleep_for(600ms);
  REQUIRE(enforcer.collect_garbage().ok());  // the ended grace leaves the map
  CHECK_FALSE(lab.maps().grace(describe(identity_block(kClient, 0, 0).target))->has_value());
  REQUIRE(enforcer.block(identity_block(kClient, 0, 6)).ok());
  CHECK(lab.connect_from_workload() == EPERM);
  CHECK_FALSE(*enforcer.remove(identity_block(99, 0, 0).target, false));
  CHECK_FALSE(enforcer.block(identity_block(0, 0, 7)).ok());  // 'world' is never blocked by identity
}

TEST_CASE("a full block map evicts only expired entries and never a live block")
{
  Lab lab(4);
  enforce::MapEnforcer enforcer(lab.maps());
  for (IdentityId id = 100; id < 104; ++id) REQUIRE(enforcer.block(identity_block(id, 0, id)).ok());
  auto refused = enforcer.block(identity_block(200, 0, 200));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().find("queued for retry") != std::string::npos);
  CHECK(enforcer.stats().map_full >= 1);
  CHECK(enforcer.stats().pending == 1);
  CHECK(lab.maps().identity_blocks().list()->size() == 4);  // every live block kept

  // Two of them expire: the queued block gets in on the next GC pass, the live ones stay.
  REQUIRE(enforcer.unblock(identity_block(100, 0, 0).target, false).ok());
  REQUIRE(enforcer.unblock(identity_block(101, 0, 0).target, false).ok());
  REQUIRE(enforcer.block(identity_block(100, 20, 300)).ok());
  REQUIRE(enforcer.block(identity_block(101, 20, 301)).ok());
  std::this_thread::sleep_for(50ms);
  REQUIRE(enforcer.block(identity_block(201, 0, 201)).ok());  // evicts an expired entry
  REQUIRE(enforcer.collect_garbage().ok());
  CHECK(enforcer.stats().pending == 0);
  CHECK(lab.maps().identity_blocks().get(200)->has_value());
  CHECK(lab.maps().identity_blocks().get(201)->has_value());
  CHECK(lab.maps().identity_blocks().get(102)->has_value());
  CHECK(lab.maps().identity_blocks().get(103)->has_value());
}

TEST_CASE("metrics show active blocks by scope and kernel counters by reason")
{
  Lab lab;
  enforce::MapEnforcer enforcer(lab.maps());
  metrics::Registry registry;
  enforcer.watch(registry);
  REQUIRE(enforcer.block(identity_block(kClient, 0, 1)).ok());
  BlockRequest pair;
  pair.target.scope = BlockScope::pair;
  pair.target.identity = 1;
  pair.target.peer_identity = 2;
  REQUIRE(enforcer.block(pair).ok());
  CHECK(lab.connect_from_workload() == EPERM);
  const auto text = registry.expose();
  CHECK(text.find("riskgate_active_blocks{scope=\"identity\"} 1\n") != std::string::npos);
  CHECK(text.find("riskgate_active_blocks{scope=\"pair\"} 1\n") != std::string::npos);
  CHECK(text.find("riskgate_enforce_total{outcome=\"written\"} 2\n") != std::string::npos);
  CHECK(text.find("riskgate_kernel_total{reason=\"" + reason_name(RG_R_CONNECT_DENY_IDENTITY) + "\"} 1\n") !=
        std::string::npos);
}
