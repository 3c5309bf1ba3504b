// The README's main command, run as CI runs it: `scripts/demo --no-build --check` builds its own lab
// (named rgt*, so scripts/test's leftover check covers it), tells the story and exits non-zero unless
// the stolen token was blocked in the proxy and the kernel and normal traffic never was.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct Run {
  int status = -1;
  std::string output;
};

Run run(const std::string &command)
{
  Run r;
  FILE *pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe)) r.output += buffer.data();
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST_CASE("scripts/demo tells the stolen-token story and cleans up")
{
  const std::string source = RG_SOURCE_DIR;
  const auto demo = run("RGDEMO_PREFIX=rgt RISKGATE_BUILD_DIR=" + std::string(RG_BINARY_DIR) + " " + source +
                        "/scripts/demo --no-build --check 2>&1");
  INFO(demo.output);
  CHECK(demo.status == 0);
  CHECK(demo.output.find("batch with frontend's token: HTTP 403") != std::string::npos);
  CHECK(demo.output.find("connect() refused by the kernel") != std::string::npos);
  CHECK(demo.output.find("refused: Permission denied") != std::string::npos);
  CHECK(demo.output.find("its SYNs were dropped by the XDP gate") != std::string::npos);
  CHECK(demo.output.find("scanner swept") != std::string::npos);
  CHECK(demo.output.find("frontend burst statuses:") != std::string::npos);
  // The decisions' kernel blocks as riskgatectl reads them from the pins, and the audit chain.
  CHECK(demo.output.find("identity  batch (") != std::string::npos);
  CHECK(demo.output.find("identity  scanner (") != std::string::npos);
  CHECK(demo.output.find("xdp_drop_identity") != std::string::npos);
  CHECK(demo.output.find("connect_deny_identity") != std::string::npos);
  CHECK(demo.output.find("ok: ") != std::string::npos);
  CHECK(demo.output.find("frontend: 7/7 answered 200") != std::string::npos);
  CHECK(demo.output.find("binding +100") != std::string::npos);
  CHECK(demo.output.find("token seen from 2 workload identities (frontend, batch)") != std::string::npos);
}
