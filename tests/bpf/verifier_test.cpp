// Every riskgate BPF program loads through this kernel's verifier; prints each program's verified
// instruction count (what the verifier walked) and its size.
#include <doctest/doctest.h>

#include <cstdio>
#include <set>
#include <string>

#include <riskgate/kernel/datapath.h>

TEST_CASE("verifier accepts every program")
{
  auto programs = riskgate::kernel::Datapath::verify_all();
  REQUIRE_MESSAGE(programs.ok(), programs.error());
  std::set<std::string> names;
  for (const auto &p : *programs) {
    std::printf("%-16s verified_insns=%-6u xlated_insns=%u\n", p.name.c_str(), p.verified_insns,
                p.xlated_insns);
    CHECK(p.verified_insns > 0);
    names.insert(p.name);
  }
  const std::set<std::string> expected = {"rg_xdp_gate",   "rg_connect4", "rg_connect6",
                                          "rg_getsockopt", "rg_sockops",  "rg_msg_gate"};
  CHECK(names == expected);
}
