// Addresses as the kernel maps hold them: 16 bytes, IPv4 as v4-mapped IPv6 (abi.h), and prefixes
// in the family's own terms (10.0.0.0/8 here is prefix 96 + 8 in the LPM key).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <riskgate/common/result.h>

namespace riskgate::net {

using MappedAddr = std::array<std::uint8_t, 16>;

// An address and a prefix length in its family's terms: IPv4 0..32, IPv6 0..128.
struct IpPrefix {
  sockaddr_storage address{};
  std::uint8_t prefix_len = 0;
  bool operator==(const IpPrefix &other) const;
};

// AF_INET or AF_INET6 address (port ignored) -> 16-byte key form; error for other families.
Result<MappedAddr> to_mapped(const sockaddr_storage &address);
sockaddr_storage from_mapped(const MappedAddr &addr, std::uint16_t port = 0);
std::uint16_t port_of(const sockaddr_storage &address);  // host byte order

// "10.0.0.1", "10.0.0.0/24", "fd00::/64", "[::1]"; without /N the host prefix (32 or 128). Host bits
// set below the prefix are refused: "10.0.0.5/24" is almost always a typo for another network.
Result<IpPrefix> parse_prefix(std::string_view text);
// "10.0.0.1:80", "[fd00::1]:80".
Result<sockaddr_storage> parse_endpoint(std::string_view text);
std::string to_string(const IpPrefix &prefix);
// The one formatter of addresses: "10.0.0.1" / "fd00::1" (a v4-mapped key prints as IPv4), and
// endpoints "10.0.0.1:80" / "[fd00::1]:80"; "?" for a family that is neither. The append forms
// reuse the caller's buffer (the per-request path).
std::string address_string(const sockaddr_storage &address);
std::string address_string(const MappedAddr &addr);
std::string endpoint_string(const sockaddr_storage &address);
void append_address(const sockaddr_storage &address, std::string &out);
void append_endpoint(const sockaddr_storage &address, std::string &out);

// LPM key prefix length: IPv4 prefixes sit behind the 96-bit ::ffff:0:0 prefix.
std::uint32_t lpm_prefix_len(const IpPrefix &prefix);

// A prefix in key form, for matching in userspace what the kernel's LPM tries match (the risk
// engine's deny and watch lists): one comparison serves both families.
struct MappedPrefix {
  MappedAddr addr{};
  std::uint32_t bits = 0;  // lpm_prefix_len
  bool contains(const MappedAddr &address) const;
};
MappedPrefix to_mapped_prefix(const IpPrefix &prefix);

}  // namespace riskgate::net
