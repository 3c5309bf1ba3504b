// An allow rule grants its caller the route and nothing more: riskgated still answers 401 where
// the Service requires a JWT and none (or a bad one) comes, on the very route the rule admits.
// The real riskgated, a real policy directory, real curl and a real nginx upstream.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <riskgate/identity/jwt_sign.h>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

using namespace riskgate;

namespace {

// A port nothing listens on now (the kernel's pick, released again) for the Service to listen on.
std::uint16_t free_port()
{
  const test::LoopbackListener probe(1);
  return probe.port();
}

std::string status_of(std::uint16_t port, const std::string &path, const std::string &token = "")
{
  const std::string auth = token.empty() ? "" : fmt::format("-H 'Authorization: Bearer {}' ", token);
  return test::run_command(
      fmt::format("curl -s -o /dev/null -w '%{{http_code}}' {}http://127.0.0.1:{}{}", auth, port, path));
}

}  // namespace

TEST_CASE("an allow rule does not waive the Service's JWT requirement")
{
  test::NginxUpstream nginx;
  const test::WorkDir dir("rgt-allow");  // before the agent: removed after it is stopped
  const std::string &work = dir.path;
  const std::uint16_t listen_port = free_port();
  auto key = identity::generate_signing_key(identity::Alg::ES256, "k1").value();
  std::ofstream(work + "/jwks.json") << *identity::jwks_document({&key});
  std::ofstream(work + "/policies/orders.yaml")
      << "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n"
      << "  listen: 127.0.0.1:" << listen_port << "\n  upstream: " << nginx.address() << "\n"
      << "  auth: {jwt: {required: true, issuers: ['https://issuer.test'], audiences: [orders], jwks: "
      << work << "/jwks.json}}\n---\n"
      << "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n"
      << "  rules:\n    - {name: probes, allow: {from: [world], routes: ['GET /healthz']}}\n";
  const std::string log = work + "/riskgated.log";
  test::Process agent({std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--workers", "1",
                       "--policy-dir", work + "/policies", "--audit-log", work + "/decisions.jsonl",
                       "--admin-socket", "off", "--admin-metrics", "off"},
                      "", log);
  const std::uint16_t port = test::announced_port(log, "gateway orders on port ([0-9]+)");
  REQUIRE_MESSAGE(port == listen_port, test::read_text(log));

  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string token = identity::sign_jwt(key, nlohmann::json{{"iss", "https://issuer.test"},
                                                                   {"sub", "probe"},
                                                                   {"aud", "orders"},
                                                                   {"exp", now + 600}}
                                                        .dump())
                                .value();
  CHECK(status_of(port, "/healthz", token) == "200");  // the rule's route, with the credential it needs
  CHECK(status_of(port, "/healthz") == "401");         // the rule admits the route, not a missing JWT
  CHECK(status_of(port, "/healthz", "not.a.jwt") == "401");
  CHECK(status_of(port, "/orders/1") == "401");  // outside the rule: as before
  CHECK(status_of(port, "/orders/1", token) == "200");

  // The decision names the rule and says why it challenged.
  const std::string decisions = test::read_text(work + "/decisions.jsonl");
  CHECK(decisions.find("\"rule\":\"probes\"") != std::string::npos);
  CHECK(decisions.find("\"action\":\"challenge\"") != std::string::npos);

  agent.kill(SIGTERM);
  CHECK(agent.wait(5000).has_value());
}
