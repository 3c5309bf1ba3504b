// The loader pins every map and link under a pin root, re-adopts them on a second start without
// changing contents, and PinnedMaps works on the pins alone.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <thread>
#include <tuple>

#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/pinned_maps.h>
#include "support/kernel_env.h"

using namespace riskgate;
using namespace std::chrono_literals;

namespace {

net::IpPrefix prefix(const char *text)
{
  auto p = net::parse_prefix(text);
  REQUIRE_MESSAGE(p.ok(), p.error());
  return *p;
}

}  // namespace

TEST_CASE("pinned maps: typed round trips without programs loaded by the caller")
{
  test::TempPinDir pins;
  test::ScopedCgroup cgroup;
  kernel::DatapathConfig config;
  config.pin_root = pins.path();
  config.cgroup = cgroup.path();
  {
    auto dp = kernel::Datapath::start(config);
    REQUIRE_MESSAGE(dp.ok(), dp.error());
    CHECK_FALSE((*dp)->adopted_maps());
    CHECK(std::filesystem::exists(pins.path() + "/links/connect4"));
    CHECK(std::filesystem::exists(pins.path() + "/links/sockops"));
  }
  auto opened = kernel::PinnedMaps::open(pins.path());
  REQUIRE_MESSAGE(opened.ok(), opened.error());
  kernel::PinnedMaps &maps = *opened;

  REQUIRE(maps.ip_blocks().put(prefix("10.9.0.0/16"), kernel::block_value(0ms, 7)).ok());
  REQUIRE(
      maps.identity_blocks().put(42, kernel::block_value(10min, 8, RG_R_USER_BLOCK, RG_BLOCK_F_MANUAL)).ok());
  REQUIRE(maps.pair_blocks().put({1, 2}, kernel::block_value(0ms, 9)).ok());
  REQUIRE(maps.port_blocks().put({3, 443, 6}, kernel::block_value(0ms, 10)).ok());
  REQUIRE(maps.connection_blocks().put(12345, kernel::block_value(1ms, 11)).ok());
  CHECK_FALSE(maps.identity_blocks().put(0, kernel::block_value(0ms, 1)).ok());

  auto ips = maps.ip_blocks().list();
  REQUIRE(ips.ok());
  REQUIRE(ips->size() == 1);
  CHECK(net::to_string((*ips)[0].key) == "10.9.0.0/16");
  CHECK((*ips)[0].value.decision_id == 7);
  auto ids = maps.identity_blocks().list();
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == 1);
  CHECK((*ids)[0].key == 42);
  CHECK((*ids)[0].value.flags == RG_BLOCK_F_MANUAL);
  CHECK(kernel::block_live((*ids)[0].value));

  REQUIRE(maps.put_ipcache(prefix("10.9.1.0/24"), 5).ok());
  REQUIRE(maps.put_ipcache(prefix("fd00::/64"), 6).ok());
  auto addr = net::parse_endpoint("10.9.1.7:80");
  REQUIRE(addr.ok());
  CHECK(*maps.ipcache_identity(*addr) == 5);
  auto addr6 = net::parse_endpoint("[fd00::9]:80");
  REQUIRE(addr6.ok());
  CHECK(*maps.ipcache_identity(*addr6) == 6);
  kernel::MapPeerIdentity peers(maps);
  CHECK(peers.peer_identity(*addr, *addr, 0) == 5);

  REQUIRE(maps.sync_identities({{5, "frontend", {cgroup.id()}, {prefix("10.9.1.0/24")}}}).ok());
  auto names = maps.identity_names();
  REQUIRE(names.ok());
  CHECK(names->size() == 1);
  CHECK(names->at(5) == "frontend");
  CHECK(maps.ipcache()->size() == 1);  // fd00::/64 was not in the records
  CHECK(maps.cgroups()->size() == 1);

  // The policy's trusted pairs follow the declared set; a pair written by hand is not the policy's.
  REQUIRE(maps.put_trusted(7, 8).ok());
  REQUIRE(maps.sync_trusted({{5, 6}, {5, 7}}).ok());
  REQUIRE(maps.sync_trusted({{5, 7}, {6, 5}}).ok());
  const auto listed = maps.trusted();
  REQUIRE(listed.ok());
  std::set<std::tuple<IdentityId, IdentityId, std::uint32_t>> trusted;
  for (const auto &pair : *listed) trusted.insert({pair.client, pair.server, pair.origin});
  CHECK(trusted == std::set<std::tuple<IdentityId, IdentityId, std::uint32_t>>{{5, 7, RG_TRUSTED_F_POLICY},
                                                                               {6, 5, RG_TRUSTED_F_POLICY},
                                                                               {7, 8, RG_TRUSTED_F_MANUAL}});

  std::this_thread::sleep_for(2ms);
  auto expired = maps.remove_expired_blocks();
  REQUIRE(expired.ok());
  CHECK(*expired == 1);  // the 1 ms connection block
  CHECK(*maps.pair_blocks().remove({1, 2}));
  CHECK_FALSE(*maps.pair_blocks().remove({1, 2}));

  // A second start re-adopts the pins: the maps keep their contents, the links are updated in place.
  auto again = kernel::Datapath::start(config);
  REQUIRE_MESSAGE(again.ok(), again.error());
  CHECK((*again)->adopted_maps());
  CHECK((*again)->adopted_links() == 7);  // sk_msg, getsockopt, connect4/6, sendmsg4/6, sockops
  CHECK(maps.identity_blocks().list()->size() == 1);
  CHECK(maps.ip_blocks().list()->size() == 1);

  auto counters = maps.counters();
  REQUIRE(counters.ok());

  // Pins made with other map sizes are not silently reused: the error names the map and the way out.
  kernel::DatapathConfig resized = config;
  resized.block_entries = 4096;
  auto refused = kernel::Datapath::start(resized);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().find("rg_blk_") != std::string::npos);
  CHECK(refused.error().find("--uninstall") != std::string::npos);
  CHECK(maps.identity_blocks().list()->size() == 1);  // and nothing was lost

  // Listing reads hash maps in batches: more entries than one batch, every one of them once.
  for (IdentityId id = 1000; id < 3500; ++id)
    REQUIRE(maps.identity_blocks().put(id, kernel::block_value(0ms, id)).ok());
  auto many = maps.identity_blocks().list();
  REQUIRE(many.ok());
  CHECK(many->size() == 2501);
  std::set<IdentityId> seen;
  for (const auto &b : *many) seen.insert(b.key);
  CHECK(seen.size() == 2501);

  // Uninstall removes riskgate's pins by name and nothing else under the pin root.
  std::filesystem::create_directory(pins.path() + "/not-riskgate");
  auto partial = kernel::Datapath::uninstall(pins.path());
  REQUIRE_FALSE(partial.ok());
  CHECK(partial.error().find("other files") != std::string::npos);
  CHECK(std::filesystem::exists(pins.path() + "/not-riskgate"));
  CHECK_FALSE(std::filesystem::exists(pins.path() + "/rg_counters"));
  CHECK_FALSE(std::filesystem::exists(pins.path() + "/links"));
  std::filesystem::remove(pins.path() + "/not-riskgate");
}
