// Runs a shell command and captures what it printed (stdout and stderr) and its exit code: the CLI
// tests assert on exactly what an operator would see.
#pragma once

#include <string>
#include <vector>

namespace riskgate::test {

struct Captured {
  int code = -1;    // exit code; -1 when killed by a signal
  std::string out;  // stdout and stderr, interleaved
};

Captured capture(const std::string &command);

// A whole text file (a process log, a decision log); empty when it cannot be read.
std::string read_text(const std::string &path);

// A text file's lines, without their newlines (a decision log: one JSON line each); none when it
// cannot be read.
std::vector<std::string> read_lines(const std::string &path);

// Replaces a file with these lines, each ended by a newline (a log a test has tampered with).
void write_lines(const std::string &path, const std::vector<std::string> &lines);

}  // namespace riskgate::test
