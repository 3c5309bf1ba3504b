// Runs a shell command and captures what it printed (stdout and stderr) and its exit code: the CLI
// tests assert on exactly what an operator would see.
#pragma once

#include <string>

namespace riskgate::test {

struct Captured {
  int code = -1;    // exit code; -1 when killed by a signal
  std::string out;  // stdout and stderr, interleaved
};

Captured capture(const std::string &command);

// A whole text file (a process log, a decision log); empty when it cannot be read.
std::string read_text(const std::string &path);

}  // namespace riskgate::test
