#include "risk/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace riskgate::risk {

bool Cidr::contains(const std::array<std::uint8_t, 16> &candidate) const
{
  const unsigned full = prefix / 8;
  if (std::memcmp(address.data(), candidate.data(), full) != 0)
    return false;
  const unsigned rest = prefix % 8;
  if (rest == 0)
    return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (address[full] & mask) == (candidate[full] & mask);
}

CidrParse parse_cidr(std::string_view text)
{
  const auto slash = text.find('/');
  const std::string host(text.substr(0, slash));
  Cidr cidr;
  bool v4 = false;
  in_addr a4{};
  if (::inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    v4 = true;
    cidr.address[10] = 0xff;
    cidr.address[11] = 0xff;
    std::memcpy(&cidr.address[12], &a4, 4);
  } else if (::inet_pton(AF_INET6, host.c_str(), cidr.address.data()) != 1) {
    return {std::nullopt, fmt::format("'{}' is not an IPv4 or IPv6 address", host)};
  }
  const unsigned max = v4 ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty() || prefix > max)
      return {std::nullopt, fmt::format("'{}' has a bad prefix length (0..{})", text, max)};
  }
  cidr.prefix = v4 ? prefix + 96 : prefix;
  // Host bits set below the prefix are almost always a typo for another network.
  Cidr masked = cidr;
  for (unsigned bit = cidr.prefix; bit < 128; ++bit)
    masked.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  if (masked.address != cidr.address)
    return {std::nullopt, fmt::format("'{}' has host bits set below the /{} prefix", text, prefix)};
  return {cidr, {}};
}

std::optional<std::array<std::uint8_t, 16>> address_bytes(const sockaddr_storage &address)
{
  std::array<std::uint8_t, 16> out{};
  if (address.ss_family == AF_INET) {
    sockaddr_in a4{};
    std::memcpy(&a4, &address, sizeof a4);
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(&out[12], &a4.sin_addr, 4);
    return out;
  }
  if (address.ss_family == AF_INET6) {
    sockaddr_in6 a6{};
    std::memcpy(&a6, &address, sizeof a6);
    std::memcpy(out.data(), &a6.sin6_addr, 16);
    return out;
  }
  return std::nullopt;
}

}  // namespace riskgate::risk
