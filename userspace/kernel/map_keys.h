// The caller's keys in the kernel's key layouts (abi.h) and back.
#pragma once

#include <riskgate/abi.h>
#include <riskgate/common/identity.h>
#include <riskgate/common/net.h>
#include <riskgate/common/result.h>
#include <riskgate/kernel/block_table.h>

namespace riskgate::kernel {

// Errors for an address that is neither IPv4 nor IPv6.
Result<rg_lpm_key> lpm_key(const net::IpPrefix &prefix);
net::IpPrefix prefix_of(const rg_lpm_key &key);
Result<rg_endpoint_key> endpoint_key(const sockaddr_storage &address);
rg_port_key port_key(const PortKey &key);
PortKey port_key_of(const rg_port_key &key);
// Refuses identity 0, 'world' (every unknown peer), where it would name everyone.
Result<void> check_identity(IdentityId identity);

}  // namespace riskgate::kernel
