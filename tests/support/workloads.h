// A workload registry over a cgroup tree made in a temporary directory, with one identity,
// "frontend", selecting /system.slice/frontend.service* (its first cgroup is made here).
#pragma once

#include <filesystem>
#include <memory>

#include <doctest/doctest.h>

#include <riskgate/identity/registry.h>

namespace riskgate::test {

inline std::shared_ptr<identity::WorkloadRegistry> frontend_registry(const std::filesystem::path &cgroup_root)
{
  std::filesystem::create_directories(cgroup_root / "system.slice/frontend.service");
  auto registry = std::make_shared<identity::WorkloadRegistry>(cgroup_root.string());
  policy::Identity frontend;
  frontend.name = "frontend";
  frontend.selectors = {{"/system.slice/frontend.service*", "", "", ""}};
  REQUIRE(registry->set_policy_identities({frontend}).ok());
  return registry;
}

}  // namespace riskgate::test
