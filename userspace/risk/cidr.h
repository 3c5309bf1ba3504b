// Address prefixes for the policy's static lists: "10.0.0.0/8", "fd00::/64", or a bare address
// (a host prefix). IPv4 is held as an IPv4-mapped IPv6 prefix so one match serves both families.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace riskgate::risk {

struct Cidr {
  std::array<std::uint8_t, 16> address{};  // IPv6, or IPv4-mapped
  unsigned prefix = 128;                   // in IPv6 bits (IPv4 /24 = 120)

  bool contains(const std::array<std::uint8_t, 16> &candidate) const;
};

// The problem with `text`, or the prefix.
struct CidrParse {
  std::optional<Cidr> cidr;
  std::string error;
};
CidrParse parse_cidr(std::string_view text);

// sockaddr_in / sockaddr_in6 -> 16 bytes (IPv4-mapped for AF_INET); nullopt for other families.
std::optional<std::array<std::uint8_t, 16>> address_bytes(const sockaddr_storage &address);

}  // namespace riskgate::risk
