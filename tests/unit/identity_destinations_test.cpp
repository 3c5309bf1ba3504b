// Whom a request calls: a gateway Service's declared identity or its upstream address's owner, a
// transparent request's original destination's owner, world when nobody owns it; and the scan of
// this namespace's listeners that the local owners come from.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <riskgate/identity/destinations.h>

using namespace riskgate;
using namespace riskgate::identity;

namespace {

sockaddr_storage at(const char *endpoint)
{
  return net::parse_endpoint(endpoint).value();
}

net::MappedAddr address(const char *endpoint)
{
  return net::to_mapped(at(endpoint)).value();
}

// batch owns 10.1.0.0/16 but payments its host 10.1.2.3; frontend runs in cgroup 42, which listens.
RegistrySnapshot registry()
{
  RegistrySnapshot snapshot;
  snapshot.identities = {
      {300, "batch", "", {}, {net::parse_prefix("10.1.0.0/16").value()}},
      {301, "frontend", "", {41, 42}, {}},
      {302,
       "payments",
       "",
       {},
       {net::parse_prefix("10.1.2.3").value(), net::parse_prefix("fd00::/64").value()}},
  };
  for (std::size_t i = 0; i < snapshot.identities.size(); ++i)
    snapshot.by_id.emplace(snapshot.identities[i].id, i);
  return snapshot;
}

LocalSockets listeners()
{
  LocalSockets local;
  local.listeners = {{address("127.0.0.1:9000"), 9000, 42},
                     {address("0.0.0.0:9001"), 9001, 42},
                     {address("127.0.0.1:9002"), 9002, 7}};  // a cgroup no identity selects
  local.addresses = {address("192.168.5.5:0")};
  return local;
}

}  // namespace

TEST_CASE("destinations: a declared identity wins over the upstream's address")
{
  const DestinationTable table({{"pay", "payments", at("10.1.9.9:80")}}, registry(), listeners());
  const Destination to = table.of("pay", at("10.1.9.9:80"));
  CHECK(to.id == 302);
  CHECK(to.name == "payments");
}

TEST_CASE("destinations: a gateway upstream's owner by CIDR, longest prefix first, or by local listener")
{
  const DestinationTable table({{"wide", "", at("10.1.9.9:80")},
                                {"host", "", at("10.1.2.3:80")},
                                {"v6", "", at("[fd00::8]:80")},
                                {"local", "", at("127.0.0.1:9000")},
                                {"any", "", at("127.0.0.1:9001")},
                                {"unselected", "", at("127.0.0.1:9002")},
                                {"nobody", "", at("127.0.0.1:9999")}},
                               registry(), listeners());
  const sockaddr_storage none{};  // the Service decides, not the request
  CHECK(table.of("wide", none).name == "batch");
  CHECK(table.of("host", none).name == "payments");
  CHECK(table.of("v6", none).name == "payments");
  CHECK(table.of("local", none).id == 301);
  CHECK(table.of("any", none).name == "frontend");
  CHECK(table.of("unselected", none).id == 0);
  CHECK(table.of("nobody", none).id == 0);
  CHECK(table.of("nobody", none).name == "world");
}

TEST_CASE("destinations: a transparent request's original destination decides, per request")
{
  const DestinationTable table({{"mesh", "", std::nullopt}}, registry(), listeners());
  CHECK(table.of("mesh", at("10.1.2.3:443")).name == "payments");
  CHECK(table.of("mesh", at("10.1.7.7:443")).name == "batch");
  CHECK(table.of("mesh", at("127.0.0.1:9000")).name == "frontend");
  // A listener on every address owns the port on this namespace's addresses, not on others.
  CHECK(table.of("mesh", at("192.168.5.5:9001")).name == "frontend");
  CHECK(table.of("mesh", at("127.8.0.1:9001")).name == "frontend");
  CHECK(table.of("mesh", at("192.168.5.6:9001")).id == 0);
  CHECK(table.of("mesh", at("127.0.0.1:9000")).id == 301);
  CHECK(table.of("mesh", at("203.0.113.1:80")).name == "world");
  CHECK(table.of("mesh", sockaddr_storage{}).name == "world");  // no original destination
}

TEST_CASE("destinations: refresh publishes a changed table only, and a failed scan keeps the last listeners")
{
  bool fail = false;
  LocalSockets local = listeners();
  DestinationIdentities destinations([&]() -> Result<LocalSockets> {
    if (fail)
      return make_error("no netlink");
    return local;
  });
  destinations.configure({{"local", "", at("127.0.0.1:9000")}});
  CHECK(destinations.table()->of("local", {}).id == 0);  // nothing known before the first refresh
  const auto snapshot = registry();
  CHECK(destinations.refresh(snapshot).value() == true);
  CHECK(destinations.table()->of("local", {}).name == "frontend");
  CHECK(destinations.refresh(snapshot).value() == false);

  fail = true;
  const auto failed = destinations.refresh(snapshot);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().find("no netlink") != std::string::npos);
  CHECK(destinations.table()->of("local", {}).name == "frontend");

  fail = false;
  local.listeners.clear();  // frontend stopped listening
  CHECK(destinations.refresh(snapshot).value() == true);
  CHECK(destinations.table()->of("local", {}).id == 0);
}

TEST_CASE("scan_local_sockets: a socket this process listens on, with this process's cgroup")
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof bound;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&bound), sizeof bound) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &length) == 0);
  const auto scanned = scan_local_sockets();
  ::close(fd);
  REQUIRE_MESSAGE(scanned.ok(), scanned.error());
  const LocalListener *mine = nullptr;
  for (const auto &l : scanned->listeners)
    if (l.port == ntohs(bound.sin_port) && l.address == address("127.0.0.1:1"))
      mine = &l;
  REQUIRE(mine != nullptr);
  CHECK(mine->cgroup_id != 0);
  CHECK(std::find(scanned->addresses.begin(), scanned->addresses.end(), address("127.0.0.1:1")) !=
        scanned->addresses.end());
}
