// The BPF objects compiled into this binary, by name and SHA-256, so `--version` says exactly which
// kernel programs a build loads (two builds from one commit with another clang differ here).
#pragma once

#include <string>
#include <vector>

namespace riskgate::kernel {

struct BpfObject {
  std::string name;    // "xdp_gate"
  std::string sha256;  // hex of the ELF object embedded in the skeleton
};

std::vector<BpfObject> bpf_objects();

// What `--version` prints: "<program> <version>" and a line "bpf <name> sha256:<hex>" per object.
std::string build_description(const std::string &program);

}  // namespace riskgate::kernel
