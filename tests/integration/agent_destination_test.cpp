// Destination identity end to end: riskgated governing a child cgroup fronts two Services whose
// upstreams (nginx) run in two workload cgroups, payments and catalog, known to it only by the
// cgroup of the socket listening on each upstream's address. A `to: [payments]` deny refuses the
// caller's requests to the payments Service while its interleaved requests to the catalog Service
// go on; the kernel block is the pair (caller, payments), not the caller's identity, so the caller
// still reaches catalog directly but not payments; the decision log names both destinations.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <riskgate/kernel/pinned_maps.h>
#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;

namespace {

struct DestinationLab {
  test::TempPinDir pins;
  test::ScopedCgroup parent{"rgt-cg"};
  test::ScopedCgroup caller{parent, "caller"};
  test::ScopedCgroup payments_cg{parent, "payments"};
  test::ScopedCgroup catalog_cg{parent, "catalog"};
  std::string dir = "/tmp/" + test::unique_name("rgt-dest");
  std::string pin_root = pins.path() + "/riskgate";
  std::uint16_t pay_port = test::free_port(), shop_port = test::free_port();
  std::unique_ptr<test::NginxUpstream> payments, catalog;
  std::unique_ptr<test::Process> agent;

  // `to`: what the deny rule's to: names.
  explicit DestinationLab(const std::string &to)
  {
    std::filesystem::create_directories(dir + "/policies");
    payments = std::make_unique<test::NginxUpstream>("127.0.0.1", payments_cg.path());
    catalog = std::make_unique<test::NginxUpstream>("127.0.0.1", catalog_cg.path());
    write_policy(to);
    agent = std::make_unique<test::Process>(
        std::vector<std::string>{std::string(RG_BINARY_DIR) + "/riskgated", "--cgroup", parent.path(),
                                 "--pin-root", pin_root, "--policy-dir", dir + "/policies", "--audit-log",
                                 dir + "/decisions.jsonl", "--admin-socket", dir + "/admin.sock",
                                 "--admin-metrics", "off"},
        "", log());
    REQUIRE_MESSAGE(test::wait_for_port(pay_port, 10000), test::read_text(log()));
    REQUIRE_MESSAGE(test::wait_for_port(shop_port, 5000), test::read_text(log()));
  }
  ~DestinationLab()
  {
    if (agent) {
      agent->kill(SIGTERM);
      agent->wait(5000);
      agent.reset();
    }
    test::Process uninstall(
        {std::string(RG_BINARY_DIR) + "/riskgated", "--uninstall", "--pin-root", pin_root}, "", log());
    uninstall.wait(5000);
    std::filesystem::remove_all(dir);
  }
  std::string log() const { return dir + "/riskgated.log"; }

  void write_policy(const std::string &to) const
  {
    std::string text;
    for (const auto &[name, cgroup] : {std::pair{"caller", &caller}, std::pair{"payments", &payments_cg},
                                       std::pair{"catalog", &catalog_cg}})
      text += fmt::format(
          "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {{name: {}}}\n"
          "spec: {{selectors: [{{cgroup: \"{}\"}}]}}\n---\n",
          name, test::GovernedWorkloads::selector(*cgroup));
    for (const auto &[name, port, upstream] :
         {std::tuple{"pay", pay_port, payments.get()}, std::tuple{"shop", shop_port, catalog.get()}})
      text += fmt::format(
          "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {{name: {}}}\n"
          "spec: {{listen: \"127.0.0.1:{}\", upstream: \"{}\"}}\n---\n",
          name, port, upstream->address());
    text += fmt::format(
        "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {{name: default}}\nspec:\n"
        "  rules:\n    - {{name: caller-never-pays, deny: {{from: [caller], to: [{}]}}}}\n",
        to);
    std::ofstream(dir + "/policies/policy.yaml") << text;
  }

  // curl from the caller's cgroup; the HTTP status, 0 when it could not connect.
  int curl(std::uint16_t port)
  {
    const std::string out = dir + "/" + test::unique_name("curl");
    test::Process process({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                           fmt::format("http://127.0.0.1:{}/", port)},
                          caller.path(), out);
    REQUIRE(process.wait(10000).has_value());
    return std::atoi(test::read_text(out).c_str());
  }

  std::vector<nlohmann::json> decisions() const
  {
    std::vector<nlohmann::json> out;
    std::istringstream lines(test::read_text(dir + "/decisions.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      auto entry = nlohmann::json::parse(line, nullptr, false);
      if (entry.is_object() && entry.contains("service"))
        out.push_back(std::move(entry));
    }
    return out;
  }
};

// Both ways of naming whom the caller may not call end in the same pair block.
void check_pair_deny(const std::string &to)
{
  DestinationLab lab(to);
  // Interleaved and concurrent: each round calls both Services at once.
  std::map<std::uint16_t, std::vector<int>> statuses;
  for (int round = 0; round < 5; ++round) {
    int pay = 0, shop = 0;
    std::thread to_pay([&] { pay = lab.curl(lab.pay_port); });
    std::thread to_shop([&] { shop = lab.curl(lab.shop_port); });
    to_pay.join();
    to_shop.join();
    statuses[lab.pay_port].push_back(pay);
    statuses[lab.shop_port].push_back(shop);
  }
  CHECK_MESSAGE(statuses[lab.pay_port] == std::vector<int>(5, 403), test::read_text(lab.log()));
  CHECK_MESSAGE(statuses[lab.shop_port] == std::vector<int>(5, 200), test::read_text(lab.log()));

  auto maps = kernel::PinnedMaps::open(lab.pin_root);
  REQUIRE_MESSAGE(maps.ok(), maps.error());
  const auto names = maps->identity_names().value();
  std::map<std::string, IdentityId> ids;
  for (const auto &[id, name] : names) ids[name] = id;

  const auto listed =
      test::capture(fmt::format("{}/riskgatectl --pin-root {} -o json blocks", RG_BINARY_DIR, lab.pin_root));
  REQUIRE_MESSAGE(listed.code == 0, listed.out);
  const auto blocks = nlohmann::json::parse(listed.out);
  REQUIRE_MESSAGE(blocks.size() == 1, listed.out);
  CHECK(blocks[0]["scope"] == "pair");
  CHECK(blocks[0]["identity"] == ids.at("caller"));
  CHECK(blocks[0]["peer_identity"] == ids.at("payments"));

  // The kernel holds the pair only: the caller reaches catalog directly, payments not at all.
  CHECK(lab.curl(lab.catalog->port()) == 200);
  CHECK(lab.curl(lab.payments->port()) == 0);
  CHECK(lab.curl(lab.shop_port) == 200);

  std::size_t denied = 0, allowed = 0;
  for (const auto &d : test::eventually([&] { return lab.decisions().size() >= 11; }, 5000)
                           ? lab.decisions()
                           : std::vector<nlohmann::json>{}) {
    if (d["service"] == "pay") {
      ++denied;
      CHECK(d["rule"] == "caller-never-pays");
      CHECK(d["destination_identity_name"] == "payments");
      CHECK(d["destination_identity"] == ids.at("payments"));
    } else {
      ++allowed;
      CHECK(d["action"] == "allow");
      CHECK(d["destination_identity_name"] == "catalog");
    }
    CHECK(d["source_identity_name"] == "caller");
  }
  CHECK_MESSAGE(denied == 5, test::read_text(lab.dir + "/decisions.jsonl"));
  CHECK(allowed == 6);
}

}  // namespace

TEST_CASE("a to: deny on an identity refuses the caller's Service calling it, blocks the pair, names both")
{
  check_pair_deny("payments");
}

TEST_CASE("a to: deny on a Service blocks the pair of its destination, not the caller's whole identity")
{
  check_pair_deny("pay");
}
