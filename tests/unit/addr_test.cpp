// Addresses and prefixes in the kernel's key form: one parser for policy, identities, the CLI and
// the risk engine's lists, and one match that agrees with the kernel's LPM tries for both families.
#include <doctest/doctest.h>

#include <riskgate/common/net.h>

using namespace riskgate;

namespace {

net::MappedAddr mapped(const char *endpoint)
{
  auto address = net::parse_endpoint(endpoint);
  REQUIRE_MESSAGE(address.ok(), address.error());
  return *net::to_mapped(*address);
}

net::MappedPrefix prefix(const char *text)
{
  auto parsed = net::parse_prefix(text);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error());
  return net::to_mapped_prefix(*parsed);
}

}  // namespace

TEST_CASE("prefixes: both families, host prefixes, and clear refusals")
{
  CHECK(prefix("10.1.0.0/16").bits == 96 + 16);
  CHECK(prefix("10.1.2.3").bits == 128);  // an IPv4 host: 96 + 32
  CHECK(prefix("fd00::/64").bits == 64);
  CHECK(net::parse_prefix("10.0.0.5/24").error() == "'10.0.0.5/24' has host bits set below the /24 prefix");
  CHECK(net::parse_prefix("10.0.0.0/33").error() == "'10.0.0.0/33': prefix length 33 exceeds 32");
  CHECK_FALSE(net::parse_prefix("10.0.0.0/x").ok());
  CHECK_FALSE(net::parse_prefix("300.1.1.1").ok());
  CHECK_FALSE(net::parse_prefix("10.0.0.0/0").ok());  // would match every address
}

TEST_CASE("prefix match: what the LPM trie would match, IPv4 never matching an IPv6 prefix by accident")
{
  const auto net = prefix("10.1.0.0/16");
  CHECK(net.contains(mapped("10.1.200.7:80")));
  CHECK_FALSE(net.contains(mapped("10.2.0.1:80")));
  const auto odd = prefix("192.168.0.128/25");
  CHECK(odd.contains(mapped("192.168.0.200:1")));
  CHECK_FALSE(odd.contains(mapped("192.168.0.127:1")));
  const auto v6 = prefix("fd00::/64");
  CHECK(v6.contains(mapped("[fd00::1]:443")));
  CHECK_FALSE(v6.contains(mapped("10.1.0.1:443")));
  CHECK_FALSE(prefix("::/1").contains(mapped("10.1.0.1:443")) == false);  // ::ffff:0:0/96 lies in ::/1
}
