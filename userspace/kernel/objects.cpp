#include <riskgate/kernel/objects.h>

#include <openssl/evp.h>

#include <fmt/format.h>

#include <riskgate/common/version.h>

#include "msg_gate.skel.h"
#include "sock_gate.skel.h"
#include "sockops_tag.skel.h"
#include "xdp_gate.skel.h"

namespace riskgate::kernel {

namespace {

std::string sha256_hex(const void *data, std::size_t size)
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

template <const void *(*elf_bytes)(size_t *)>
BpfObject object(const char *name)
{
  size_t size = 0;
  const void *data = elf_bytes(&size);
  return {name, sha256_hex(data, size)};
}

}  // namespace

std::vector<BpfObject> bpf_objects()
{
  return {object<xdp_gate__elf_bytes>("xdp_gate"), object<sock_gate__elf_bytes>("sock_gate"),
          object<sockops_tag__elf_bytes>("sockops_tag"), object<msg_gate__elf_bytes>("msg_gate")};
}

std::string build_description(const std::string &program)
{
  std::string text = fmt::format("{} {}\n", program, version());
  for (const auto &object : bpf_objects())
    text += fmt::format("bpf {} sha256:{}\n", object.name, object.sha256);
  return text;
}

}  // namespace riskgate::kernel
