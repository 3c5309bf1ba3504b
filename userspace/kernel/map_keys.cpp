#include "map_keys.h"

#include <cstring>

namespace riskgate::kernel {

using namespace net;

Result<rg_lpm_key> lpm_key(const IpPrefix &prefix)
{
  auto addr = to_mapped(prefix.address);
  if (!addr)
    return make_error(addr.error());
  rg_lpm_key key{};
  key.prefixlen = lpm_prefix_len(prefix);
  std::memcpy(key.addr, addr->data(), sizeof(key.addr));
  return key;
}

IpPrefix prefix_of(const rg_lpm_key &key)
{
  MappedAddr addr;
  std::memcpy(addr.data(), key.addr, addr.size());
  IpPrefix prefix{from_mapped(addr), 0};
  const bool v4 = prefix.address.ss_family == AF_INET && key.prefixlen >= RG_V4_MAPPED_PREFIX;
  prefix.prefix_len = static_cast<std::uint8_t>(v4 ? key.prefixlen - RG_V4_MAPPED_PREFIX : key.prefixlen);
  return prefix;
}

Result<rg_endpoint_key> endpoint_key(const sockaddr_storage &address)
{
  auto addr = to_mapped(address);
  if (!addr)
    return make_error(addr.error());
  rg_endpoint_key key{};
  std::memcpy(key.addr, addr->data(), sizeof(key.addr));
  key.port = port_of(address);
  return key;
}

rg_port_key port_key(const PortKey &key)
{
  rg_port_key out{};
  out.identity = key.identity;
  out.port = key.port;
  out.proto = key.proto;
  return out;
}

PortKey port_key_of(const rg_port_key &key)
{
  return {key.identity, key.port, key.proto};
}

Result<void> check_identity(IdentityId identity)
{
  if (identity == RG_IDENTITY_WORLD)
    return make_error("identity 0 is 'world' (every unknown peer) and cannot be used here");
  return {};
}

}  // namespace riskgate::kernel
