#include <riskgate/common/net.h>

#include <arpa/inet.h>

#include <cstring>

#include <fmt/format.h>

#include <riskgate/abi.h>

namespace riskgate::net {

namespace {

constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const MappedAddr &addr)
{
  return std::memcmp(addr.data(), kV4Mapped, sizeof(kV4Mapped)) == 0;
}

std::uint8_t host_prefix(const sockaddr_storage &address)
{
  return address.ss_family == AF_INET ? 32 : 128;
}

Result<sockaddr_storage> parse_address(const std::string &text)
{
  sockaddr_storage out{};
  auto *v4 = reinterpret_cast<sockaddr_in *>(&out);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&out);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return out;
  }
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    return out;
  }
  return make_error(fmt::format("'{}' is not an IPv4 or IPv6 address", text));
}

}  // namespace

bool IpPrefix::operator==(const IpPrefix &other) const
{
  auto a = to_mapped(address), b = to_mapped(other.address);
  return a && b && *a == *b && lpm_prefix_len(*this) == lpm_prefix_len(other);
}

Result<MappedAddr> to_mapped(const sockaddr_storage &address)
{
  MappedAddr out{};
  if (address.ss_family == AF_INET) {
    std::memcpy(out.data(), kV4Mapped, sizeof(kV4Mapped));
    std::memcpy(out.data() + 12, &reinterpret_cast<const sockaddr_in &>(address).sin_addr, 4);
    return out;
  }
  if (address.ss_family == AF_INET6) {
    std::memcpy(out.data(), &reinterpret_cast<const sockaddr_in6 &>(address).sin6_addr, 16);
    return out;
  }
  return make_error(fmt::format("address family {} is neither AF_INET nor AF_INET6", address.ss_family));
}

sockaddr_storage from_mapped(const MappedAddr &addr, std::uint16_t port)
{
  sockaddr_storage out{};
  if (is_v4_mapped(addr)) {
    auto &v4 = reinterpret_cast<sockaddr_in &>(out);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&v4.sin_addr, addr.data() + 12, 4);
  } else {
    auto &v6 = reinterpret_cast<sockaddr_in6 &>(out);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&v6.sin6_addr, addr.data(), 16);
  }
  return out;
}

std::uint16_t port_of(const sockaddr_storage &address)
{
  if (address.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in &>(address).sin_port);
  if (address.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6 &>(address).sin6_port);
  return 0;
}

std::uint32_t lpm_prefix_len(const IpPrefix &prefix)
{
  const std::uint8_t len = prefix.prefix_len == 0 ? host_prefix(prefix.address) : prefix.prefix_len;
  return prefix.address.ss_family == AF_INET ? RG_V4_MAPPED_PREFIX + len : len;
}

Result<IpPrefix> parse_prefix(std::string_view text)
{
  std::string addr_text(text);
  std::string len_text;
  if (auto slash = addr_text.find('/'); slash != std::string::npos) {
    len_text = addr_text.substr(slash + 1);
    addr_text.resize(slash);
  }
  if (addr_text.size() >= 2 && addr_text.front() == '[' && addr_text.back() == ']')
    addr_text = addr_text.substr(1, addr_text.size() - 2);
  auto address = parse_address(addr_text);
  if (!address)
    return make_error(address.error());
  IpPrefix prefix{*address, host_prefix(*address)};
  if (!len_text.empty()) {
    unsigned len = 0;
    for (char c : len_text) {
      if (c < '0' || c > '9' || len > 128)
        return make_error(fmt::format("'{}': prefix length '{}' is not a number", text, len_text));
      len = len * 10 + static_cast<unsigned>(c - '0');
    }
    if (len > host_prefix(*address))
      return make_error(fmt::format("'{}': prefix length {} exceeds {}", text, len, host_prefix(*address)));
    if (len == 0)
      return make_error(fmt::format("'{}': prefix length 0 would match every address", text));
    prefix.prefix_len = static_cast<std::uint8_t>(len);
  }
  const MappedPrefix mapped = to_mapped_prefix(prefix);
  MappedAddr network = mapped.addr;
  for (std::uint32_t bit = mapped.bits; bit < 128; ++bit)
    network[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  if (network != mapped.addr)
    return make_error(fmt::format("'{}' has host bits set below the /{} prefix", text, prefix.prefix_len));
  return prefix;
}

MappedPrefix to_mapped_prefix(const IpPrefix &prefix)
{
  MappedPrefix out;
  if (auto mapped = to_mapped(prefix.address))
    out.addr = *mapped;
  out.bits = lpm_prefix_len(prefix);
  return out;
}

bool MappedPrefix::contains(const MappedAddr &address) const
{
  const std::uint32_t full = bits / 8;
  if (std::memcmp(addr.data(), address.data(), full) != 0)
    return false;
  const std::uint32_t rest = bits % 8;
  if (rest == 0)
    return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == (address[full] & mask);
}

Result<sockaddr_storage> parse_endpoint(std::string_view text)
{
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return make_error(fmt::format("'{}': expected HOST:PORT", text));
  std::string host(text.substr(0, colon));
  const std::string port_text(text.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto address = parse_address(host);
  if (!address)
    return make_error(fmt::format("'{}': {}", text, address.error()));
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535)
      return make_error(fmt::format("'{}': port '{}' is not a number 0-65535", text, port_text));
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port_text.empty() || port > 65535)
    return make_error(fmt::format("'{}': port '{}' is not a number 0-65535", text, port_text));
  auto mapped = to_mapped(*address);
  return from_mapped(*mapped, static_cast<std::uint16_t>(port));
}

namespace {

void append_decimal(unsigned value, std::string &out)
{
  char digits[10];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value);
  while (n) out.push_back(digits[--n]);
}

}  // namespace

// IPv4 is written by hand: the risk engine formats every request's peer, and inet_ntop goes
// through sprintf.
void append_address(const sockaddr_storage &address, std::string &out)
{
  if (address.ss_family == AF_INET) {
    sockaddr_in a{};
    std::memcpy(&a, &address, sizeof a);
    const auto *octets = reinterpret_cast<const unsigned char *>(&a.sin_addr);
    for (int i = 0; i < 4; ++i) {
      if (i)
        out.push_back('.');
      append_decimal(octets[i], out);
    }
  } else if (address.ss_family == AF_INET6) {
    sockaddr_in6 a{};
    std::memcpy(&a, &address, sizeof a);
    char host[INET6_ADDRSTRLEN] = "";
    ::inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
    out += host;
  } else {
    out.push_back('?');
  }
}

void append_endpoint(const sockaddr_storage &address, std::string &out)
{
  const bool v6 = address.ss_family == AF_INET6;
  if (v6)
    out.push_back('[');
  append_address(address, out);
  if (v6)
    out.push_back(']');
  if (address.ss_family == AF_INET || v6) {
    out.push_back(':');
    append_decimal(port_of(address), out);
  }
}

std::string address_string(const sockaddr_storage &address)
{
  std::string out;
  append_address(address, out);
  return out;
}

std::string address_string(const MappedAddr &addr)
{
  return address_string(from_mapped(addr));
}

std::string endpoint_string(const sockaddr_storage &address)
{
  std::string out;
  append_endpoint(address, out);
  return out;
}

std::string to_string(const IpPrefix &prefix)
{
  const std::uint8_t len = prefix.prefix_len == 0 ? host_prefix(prefix.address) : prefix.prefix_len;
  return fmt::format("{}/{}", address_string(prefix.address), len);
}

}  // namespace riskgate::net
