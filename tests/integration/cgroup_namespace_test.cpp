// riskgated in a Kubernetes pod: the host's cgroup hierarchy is mounted, but the pod has a private
// cgroup namespace, so /proc/self/cgroup reads "0::/". riskgated must still find its own cgroup (it
// exempts that cgroup from redirects, denies and sk_msg), not take the root for it.
#include <doctest/doctest.h>

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <string>

#include <riskgate/kernel/mounts.h>
#include "support/kernel_env.h"

namespace {

std::string read_line(const char *path, const char *prefix)
{
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0)
      return line;
  return {};
}

}  // namespace

TEST_CASE("own cgroup is found from inside a private cgroup namespace, as in a pod")
{
  riskgate::test::ScopedCgroup pod("rgt-pod");
  std::array<int, 2> go{}, result{};
  REQUIRE(::pipe(go.data()) == 0);
  REQUIRE(::pipe(result.data()) == 0);

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1 || ::unshare(CLONE_NEWCGROUP) != 0)
      ::_exit(2);
    std::string answer = read_line("/proc/self/cgroup", "0::") + "\n";
    auto dir = riskgate::kernel::own_cgroup_dir();
    answer += dir.ok() ? *dir : "error: " + dir.error();
    if (::write(result[1], answer.data(), answer.size()) != static_cast<ssize_t>(answer.size()))
      ::_exit(3);
    ::_exit(0);
  }
  ::close(go[0]);
  ::close(result[1]);
  pod.add_pid(child);
  REQUIRE(::write(go[1], "x", 1) == 1);
  ::close(go[1]);

  std::string answer;
  char buffer[512];
  for (ssize_t n; (n = ::read(result[0], buffer, sizeof buffer)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(n));
  ::close(result[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  const auto newline = answer.find('\n');
  REQUIRE(newline != std::string::npos);
  CHECK(answer.substr(0, newline) == "0::/");  // what a pod sees
  CHECK(answer.substr(newline + 1) == pod.path());
}
