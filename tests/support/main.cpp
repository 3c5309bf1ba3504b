// doctest main shared by every test executable. Kernel-labelled executables (bpf, integration) first
// check that this machine can run them: outside CI a missing prerequisite skips the whole
// executable (exit 77, ctest prints "Skipped") with the reason; with CI=true it fails instead.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "support/kernel_env.h"

extern const char *const riskgate_test_label;  // tests/CMakeLists.txt

int main(int argc, char **argv)
{
  const std::string label = riskgate_test_label;
  if (label != "unit") {
    if (auto missing = riskgate::test::kernel_prerequisites_missing()) {
      if (riskgate::test::in_ci()) {
        std::fprintf(stderr, "FAIL: %s test cannot run in CI: %s\n", label.c_str(), missing->c_str());
        return 1;
      }
      std::fprintf(stderr, "SKIP: %s test needs the kernel: %s (run as root: sudo scripts/test)\n",
                   label.c_str(), missing->c_str());
      return 77;
    }
  }
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
