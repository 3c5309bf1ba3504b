#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <riskgate/kernel/mounts.h>

TEST_CASE("cgroup v2 root is discovered from /proc/mounts")
{
  auto root = riskgate::kernel::cgroup2_root();
  REQUIRE_MESSAGE(root.ok(), root.error());
  struct stat st {};
  CHECK(::stat((*root + "/cgroup.controllers").c_str(), &st) == 0);
  auto id = riskgate::kernel::cgroup_id(*root);
  REQUIRE(id.ok());
  CHECK(*id != 0);
}

TEST_CASE("cgroup id of a missing directory is an error that names it")
{
  auto id = riskgate::kernel::cgroup_id("/nonexistent/riskgate");
  REQUIRE_FALSE(id.ok());
  CHECK(id.error().find("/nonexistent/riskgate") != std::string::npos);
}

TEST_CASE("own cgroup is a cgroup v2 directory that lists this process")
{
  auto dir = riskgate::kernel::own_cgroup_dir();
  REQUIRE_MESSAGE(dir.ok(), dir.error());
  std::ifstream procs(*dir + "/cgroup.procs");
  REQUIRE(procs.good());
  bool found = false;
  for (long pid = 0; procs >> pid;) found = found || pid == static_cast<long>(::getpid());
  CHECK(found);
}
