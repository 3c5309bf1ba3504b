#include "support/capture.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace riskgate::test {

Captured capture(const std::string &command)
{
  FILE *pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe)
    throw std::runtime_error("popen failed: " + command);
  Captured result;
  std::array<char, 4096> buffer{};
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    result.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string read_text(const std::string &path)
{
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> read_lines(const std::string &path)
{
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void write_lines(const std::string &path, const std::vector<std::string> &lines)
{
  std::ofstream out(path, std::ios::trunc);
  for (const auto &line : lines) out << line << '\n';
}

}  // namespace riskgate::test
