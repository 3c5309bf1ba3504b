#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <random>

#include <fmt/format.h>

#include <riskgate/policy/embedded.h>
#include <riskgate/policy/policy.h>

#include "support/capture.h"

using riskgate::policy::load_path;
using riskgate::policy::load_text;
using riskgate::policy::LoadResult;

namespace {

std::vector<std::string> messages(const LoadResult &result)
{
  std::vector<std::string> out;
  for (const auto &d : result.diagnostics) out.push_back(riskgate::policy::to_string(d));
  return out;
}

bool has(const LoadResult &result, const std::string &needle)
{
  for (const auto &m : messages(result))
    if (m.find(needle) != std::string::npos)
      return true;
  return false;
}

std::string dump(const LoadResult &result)
{
  std::string all;
  for (const auto &m : messages(result)) all += m + "\n";
  return all;
}

struct TempDir {
  TempDir()
  {
    path = std::filesystem::temp_directory_path() /
           ("rgt-policy-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string &name, const std::string &text) const { std::ofstream(path / name) << text; }
  std::filesystem::path path;
  static inline int counter = 0;
};

constexpr const char *kShop = R"(apiVersion: riskgate.dev/v1
kind: Identity
metadata: {name: frontend}
spec:
  spiffe: spiffe://cluster.local/ns/shop/sa/frontend
  selectors:
    - cgroup: "/system.slice/frontend.service"
    - kubernetes: {namespace: shop, serviceAccount: frontend}
    - cidr: 10.0.1.0/24
---
apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: orders}
spec:
  listen: "0.0.0.0:8080"
  upstream: "127.0.0.1:9000"
  auth:
    jwt: {required: true, issuers: ["https://issuer.example"], audiences: [orders], jwks: /etc/riskgate/jwks.json}
  bindings:
    - {subject: "svc:frontend", identities: [frontend]}
)";

}  // namespace

TEST_CASE("the embedded default policy loads and has a content version")
{
  const auto loaded = riskgate::policy::load_default();
  REQUIRE_MESSAGE(loaded.ok(), dump(loaded));
  CHECK(loaded.set->version.size() == 12);
  REQUIRE(loaded.set->risk_policies.size() == 1);
  const auto &policy = loaded.set->risk_policies.front();
  CHECK(policy.mode == riskgate::policy::Mode::enforce);
  CHECK(policy.challenge_at == 40);
  CHECK(policy.block_ttl_ms == 600000);
  CHECK(policy.signals.at("novelty").params.at("learn") == "10m");
}

TEST_CASE("identities and services are read with every field")
{
  const auto loaded = load_text(kShop, "shop.yaml");
  REQUIRE_MESSAGE(loaded.ok(), dump(loaded));
  REQUIRE(loaded.set->identities.size() == 1);
  const auto &frontend = loaded.set->identities[0];
  CHECK(frontend.name == "frontend");
  CHECK(frontend.spiffe == "spiffe://cluster.local/ns/shop/sa/frontend");
  REQUIRE(frontend.selectors.size() == 3);
  CHECK(frontend.selectors[0].cgroup == "/system.slice/frontend.service");
  CHECK(frontend.selectors[1].k8s_service_account == "frontend");
  CHECK(frontend.selectors[2].cidr == "10.0.1.0/24");
  CHECK(frontend.where.line == 1);
  const auto &orders = loaded.set->services.at(0);
  CHECK(orders.listen == "0.0.0.0:8080");
  REQUIRE(orders.jwt.has_value());
  CHECK(orders.jwt->required);
  CHECK(orders.jwt->audiences == std::vector<std::string>{"orders"});
  CHECK(orders.bindings.at(0).identities == std::vector<std::string>{"frontend"});
  CHECK(orders.where.line == 11);
  CHECK(loaded.set->risk_policies.empty());
}

TEST_CASE("the version is a content hash")
{
  const auto a = load_text(kShop, "a.yaml");
  const auto b = load_text(kShop, "elsewhere/b.yaml");
  const auto c = load_text(std::string(kShop) + "# edited\n", "a.yaml");
  REQUIRE((a.ok() && b.ok() && c.ok()));
  CHECK(a.set->version == b.set->version);
  CHECK(a.set->version != c.set->version);
}

TEST_CASE("every error is reported at once with file:line:column")
{
  const auto loaded = load_text(R"(apiVersion: riskgate.dev/v1
kind: RiskPolicy
metadata: {name: broken}
spec:
  mode: enforcing
  signals:
    rate: {wieght: 30, warmup: 10x}
    novelty: {weight: "lots", learn: 600}
    telepathy: {weight: 5}
  thresholds: {challenge: 70, limit: 60, block: 85}
  block: {scope: everything, ttl: 10m, escalate: {max: 1m}}
  lists:
    deny: {cidrs: [10.0.0.0/33, 300.1.1.1, 10.0.0.1/8], identities: [ghost]}
  rules:
    - {name: r1, deny: {from: [batch], to: [payments]}}
    - {name: r1, allow: {from: [frontend]}, deny: {to: [x]}}
    - {deny: {routes: [orders]}}
  limit: {retryAfter: 5}
)",
                                "bad.yaml");
  REQUIRE_FALSE(loaded.ok());
  INFO(dump(loaded));
  CHECK(has(loaded, "bad.yaml:5:9: mode must be enforce or observe"));
  CHECK(has(loaded, "bad.yaml:7:12: unknown key 'wieght' in signal 'rate' (did you mean 'weight'?)"));
  CHECK(has(loaded, "bad.yaml:7:32: rate.warmup: '10x' is not a duration"));
  CHECK(has(loaded, "bad.yaml:8:23: novelty.weight must be a whole number from 0 to 100, not 'lots'"));
  CHECK(has(loaded, "bad.yaml:9:5: unknown signal 'telepathy'"));
  CHECK(has(loaded, "bad.yaml:10:15: thresholds must rise: challenge (70) < limit (60) < block (85)"));
  CHECK(has(loaded, "bad.yaml:11:18: block.scope must be ip, identity, pair or connection"));
  CHECK(has(loaded, "block.escalate.max (1m) is shorter than block.ttl (10m)"));
  CHECK(has(loaded, "bad.yaml:13:20: '10.0.0.0/33': prefix length 33 exceeds 32"));
  CHECK(has(loaded, "'300.1.1.1' is not an IPv4 or IPv6 address"));
  CHECK(has(loaded, "'10.0.0.1/8' has host bits set"));
  CHECK(has(loaded, "bad.yaml:13:70: lists.deny.identities: unknown identity 'ghost'"));
  CHECK(has(loaded, "rule 'r1' from: unknown identity 'batch'"));
  CHECK(has(loaded, "rule 'r1' to: unknown identity or service 'payments'"));
  CHECK(has(loaded, "duplicate rule name 'r1'"));
  CHECK(has(loaded, "rule 'r1' needs exactly one of allow or deny"));
  CHECK(has(loaded, "a rule needs a name"));
  CHECK(has(loaded, "route 'orders': the path must start with '/'"));
  CHECK(has(loaded, "bad.yaml:8:38: novelty.learn: '600' is not a duration: 600 has no unit; write 600s"));
  CHECK(has(loaded, "bad.yaml:18:23: retryAfter: '5' is not a duration: 5 has no unit"));
  CHECK(loaded.diagnostics.size() >= 20);
}

TEST_CASE("document structure errors")
{
  SUBCASE("apiVersion, kind and metadata")
  {
    const auto loaded =
        load_text("apiVersion: v1\nkind: Gadget\nmetadata: {name: Bad_Name}\nspec: {}\n", "x.yaml");
    INFO(dump(loaded));
    CHECK(has(loaded, "x.yaml:1:13: apiVersion must be riskgate.dev/v1"));
    CHECK(has(loaded, "x.yaml:2:7: unknown kind 'Gadget'"));
    CHECK(has(loaded, "metadata.name 'Bad_Name' must be lowercase"));
  }
  SUBCASE("missing parts")
  {
    const auto loaded = load_text("apiVersion: riskgate.dev/v1\nkind: Identity\n", "x.yaml");
    CHECK(has(loaded, "x.yaml:1:1: document has no metadata"));
    CHECK(has(loaded, "document has no spec"));
  }
  SUBCASE("YAML syntax errors carry their position")
  {
    const auto loaded = load_text("apiVersion: riskgate.dev/v1\nkind: [Identity\n", "x.yaml");
    REQUIRE_FALSE(loaded.ok());
    CHECK(messages(loaded).at(0).rfind("x.yaml:", 0) == 0);
    CHECK(has(loaded, "YAML syntax"));
  }
  SUBCASE("wrong types")
  {
    const auto loaded = load_text(R"(apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: orders}
spec:
  listen: "0.0.0.0:99999"
  upstream: [a, b]
  auth: {jwt: {required: maybe, issuers: https://x, algorithms: [HS256, XX1]}}
  bindings: {subject: x}
)",
                                  "svc.yaml");
    INFO(dump(loaded));
    CHECK(has(loaded, "svc.yaml:5:11: listen '0.0.0.0:99999' has no valid port"));
    CHECK(has(loaded, "svc.yaml:6:13: upstream must be a string"));
    CHECK(has(loaded, "required must be true or false"));
    CHECK(has(loaded, "issuers must be a list"));
    CHECK(has(loaded, "HS256 needs allowHS256: true"));
    CHECK(has(loaded, "unknown algorithm 'XX1'"));
    CHECK(has(loaded, "jwt needs jwks (a file) or jwksUrl"));
    CHECK(has(loaded, "bindings must be a list"));
  }
  SUBCASE("signing keys are fetched over https only")
  {
    const auto loaded = load_text(R"(apiVersion: riskgate.dev/v1
kind: Service
metadata: {name: orders}
spec:
  upstream: "127.0.0.1:9000"
  auth: {jwt: {jwksUrl: "http://idp.example/keys"}}
)",
                                  "svc.yaml");
    INFO(dump(loaded));
    CHECK(
        has(loaded,
            "svc.yaml:6:25: jwksUrl must be an https:// URL (signing keys are not fetched over plain http)"));
  }
  SUBCASE("one RiskPolicy per set, unique names per kind")
  {
    const std::string policy =
        "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: a}\nspec: {}\n";
    const std::string identity =
        "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: a}\nspec: {}\n";
    const auto loaded =
        load_text(policy + "---\n" + policy + "---\n" + identity + "---\n" + identity, "x.yaml");
    INFO(dump(loaded));
    CHECK(has(loaded, "x.yaml:6:1: only one RiskPolicy per policy set (the first is 'a' at x.yaml:1:1)"));
    CHECK(has(loaded, "duplicate Identity 'a' (first defined at x.yaml:11:1)"));
  }
}

TEST_CASE("a policy directory is every yaml file in it; references cross files")
{
  TempDir dir;
  dir.write("10-identities.yaml",
            "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: batch}\nspec: {}\n---\n"
            "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: payments}\nspec: {}\n");
  dir.write("20-policy.yml",
            "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: default}\nspec:\n"
            "  rules:\n    - {name: batch-never-pays, deny: {from: [batch], to: [payments]}}\n");
  dir.write("notes.txt", "not a policy");
  const auto loaded = load_path(dir.path.string());
  REQUIRE_MESSAGE(loaded.ok(), dump(loaded));
  CHECK(loaded.set->identities.size() == 2);
  CHECK(loaded.set->files.size() == 2);
  CHECK(loaded.set->risk_policies.at(0).rules.at(0).name == "batch-never-pays");

  dir.write("30-bad.yaml",
            "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: x}\nspec: {selectors: [{cidr: "
            "nope}]}\n");
  const auto bad = load_path(dir.path.string());
  CHECK_FALSE(bad.ok());
  CHECK(has(bad, "30-bad.yaml:4:27: 'nope' is not an IPv4 or IPv6 address"));

  CHECK(has(load_path((dir.path / "missing.yaml").string()), "missing.yaml: cannot open"));
  TempDir empty;
  CHECK(has(load_path(empty.path.string()), "no policy files"));
}

TEST_CASE("a gateway Service's identity names an identity of the set, at its position when it does not")
{
  const std::string identity =
      "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {name: payments}\nspec: {}\n";
  const auto service = [](const std::string &spec) {
    return "---\napiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: pay}\nspec: " + spec + "\n";
  };
  const auto declared = load_text(
      identity + service("{listen: \":8081\", upstream: \"10.0.0.9:80\", identity: payments}"), "s.yaml");
  REQUIRE_MESSAGE(declared.ok(), dump(declared));
  CHECK(declared.set->services.at(0).identity == "payments");
  CHECK(load_text(identity + service("{listen: \":8081\", upstream: \"10.0.0.9:80\"}"), "s.yaml")
            .set->services.at(0)
            .identity.empty());

  const auto unknown = load_text(
      identity + service("{listen: \":8081\", upstream: \"10.0.0.9:80\", identity: paymnets}"), "s.yaml");
  CHECK(has(unknown,
            "s.yaml:9:60: service 'pay' identity: unknown identity 'paymnets' (did you mean 'payments'?)"));
  const auto world = load_text(
      identity + service("{listen: \":8081\", upstream: \"10.0.0.9:80\", identity: world}"), "s.yaml");
  CHECK(has(world, "s.yaml:9:60: identity 'world' names no workload"));
  const auto transparent =
      load_text(identity + service("{transparent: {port: 80}, identity: payments}"), "s.yaml");
  CHECK(has(transparent, "s.yaml:9:43: identity is for gateway Services"));
}

namespace {

// Three identities and a RiskPolicy whose spec is the given fastPath lines.
std::string with_fast_path(const std::string &fast_path)
{
  std::string text;
  for (const char *name : {"frontend", "batch", "monitoring"})
    text += fmt::format(
        "apiVersion: riskgate.dev/v1\nkind: Identity\nmetadata: {{name: {}}}\nspec: {{}}\n---\n", name);
  return text + "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n" + fast_path;
}

}  // namespace

TEST_CASE("fastPath: each (from, to) pair of identities once, every mistake at its position")
{
  SUBCASE("the shop example expands to one pair per combination")
  {
    const auto loaded = load_path(RG_SOURCE_DIR "/policies/shop.yaml");
    REQUIRE_MESSAGE(loaded.ok(), dump(loaded));
    const auto &pairs = loaded.set->risk_policies.at(0).fast_path;
    REQUIRE(pairs.size() == 2);
    CHECK(pairs[0].from == "monitoring");
    CHECK(pairs[0].to == "frontend");
    CHECK(pairs[1].from == "monitoring");
    CHECK(pairs[1].to == "batch");
  }
  SUBCASE("unknown names, '*', world, repeats and wrong types")
  {
    // The identities take lines 1-15, the RiskPolicy 16-19: fastPath is line 20.
    const auto loaded = load_text(with_fast_path(R"(  fastPath:
    - {from: [frontend, frontend], to: [batch, fronted]}
    - {from: ["*"], to: [world]}
    - {from: [frontend], to: [batch]}
    - {from: monitoring, to: [[batch]], via: proxy}
    - {to: [batch]}
)"),
                                  "fast.yaml");
    REQUIRE_FALSE(loaded.ok());
    INFO(dump(loaded));
    CHECK(has(loaded, "fast.yaml:21:25: fastPath from: duplicate identity 'frontend'"));
    CHECK(has(loaded, "fast.yaml:21:48: fastPath to: unknown identity 'fronted' (did you mean 'frontend'?)"));
    CHECK(has(loaded, "fast.yaml:22:15: fastPath from: '*' is not allowed"));
    CHECK(has(loaded, "fast.yaml:22:26: fastPath to: 'world' (unknown peers) cannot take the fast path"));
    CHECK(
        has(loaded, "fast.yaml:23:7: fastPath pair frontend -> batch is already declared at fast.yaml:21:7"));
    CHECK(has(loaded, "fast.yaml:24:41: unknown key 'via' in a fastPath entry"));
    CHECK(has(loaded, "fast.yaml:24:14: fastPath from must be a non-empty list of identity names"));
    CHECK(has(loaded, "fast.yaml:24:31: each entry of fastPath to must be a string"));
    CHECK(has(loaded, "fast.yaml:25:7: a fastPath entry needs from (a list of identity names)"));
    CHECK(loaded.diagnostics.size() == 9);
  }
  SUBCASE("fastPath itself must be a list")
  {
    const auto loaded =
        load_text(with_fast_path("  fastPath: {from: [frontend], to: [batch]}\n"), "fast.yaml");
    CHECK(has(loaded, "fast.yaml:20:13: fastPath must be a list of {from, to} entries"));
  }
  SUBCASE("riskgatectl policy check reports the same positions")
  {
    TempDir dir;
    dir.write("fast.yaml", with_fast_path("  fastPath:\n    - {from: [frontend], to: [bach]}\n"));
    const auto checked = riskgate::test::capture(RG_BINARY_DIR "/riskgatectl policy check " +
                                                 (dir.path / "fast.yaml").string());
    CHECK(checked.code == 1);
    CHECK(checked.out.find("fast.yaml:21:31: fastPath to: unknown identity 'bach' (did you mean 'batch'?)") !=
          std::string::npos);
  }
}

TEST_CASE("every policy in policies/ loads")
{
  int count = 0;
  for (const auto &entry : std::filesystem::directory_iterator(RG_SOURCE_DIR "/policies")) {
    if (entry.path().extension() != ".yaml")
      continue;
    const auto loaded = load_path(entry.path().string());
    INFO(entry.path().string());
    CHECK_MESSAGE(loaded.ok(), dump(loaded));
    ++count;
  }
  CHECK(count >= 3);
}

TEST_CASE("riskgatectl policy check prints every error with its position and exits 1")
{
  const std::string ctl = RG_BINARY_DIR "/riskgatectl";
  REQUIRE_MESSAGE(std::filesystem::exists(ctl), "build riskgatectl first");
  TempDir dir;
  dir.write("bad.yaml",
            "apiVersion: riskgate.dev/v1\nkind: RiskPolicy\nmetadata: {name: p}\nspec:\n"
            "  thresholds: {challenge: 50, limit: 40}\n  block: {ttl: 10x}\n");
  auto run = [](const std::string &command, std::string &out) {
    auto ran = riskgate::test::capture(command);
    out += ran.out;
    return ran.code;
  };
  std::string out;
  CHECK(run(ctl + " policy check " + (dir.path / "bad.yaml").string(), out) == 1);
  CHECK(out.find("bad.yaml:5:15: thresholds must rise: challenge (50) < limit (40) < block (85)") !=
        std::string::npos);
  CHECK(out.find("bad.yaml:6:16: block.ttl: '10x' is not a duration") != std::string::npos);
  CHECK(out.find("2 error(s)") != std::string::npos);
  out.clear();
  CHECK(run(ctl + " policy check " RG_SOURCE_DIR "/policies/shop.yaml", out) == 0);
  CHECK(out.find("shop.yaml: ok, version ") != std::string::npos);
  out.clear();
  CHECK(run(ctl + " -o json policy check " + (dir.path / "bad.yaml").string(), out) == 1);
  CHECK(out.find("\"line\": 6") != std::string::npos);
}

TEST_CASE("mangled policies are rejected with positions, never a crash")
{
  const std::string base = std::string(riskgate::embedded::default_yaml) + "---\n" + kShop;
  std::mt19937 random(99);
  int rejected = 0;
  for (int round = 0; round < 1500; ++round) {
    std::string text = base;
    for (int edits = 1 + static_cast<int>(random() % 4); edits > 0; --edits) {
      const std::size_t at = random() % text.size();
      switch (random() % 4) {
        case 0: text.erase(at, 1 + random() % 8); break;
        case 1: text.insert(at, 1, "{}[]:,-'\"#&*!|>%@` \n\t0x"[random() % 24]); break;
        case 2: text[at] = static_cast<char>(random() % 256); break;
        default: text.insert(at, text.substr(random() % text.size(), random() % 40)); break;
      }
    }
    const auto loaded = load_text(text, "mangled.yaml");
    if (!loaded.ok()) {
      ++rejected;
      REQUIRE_FALSE(loaded.diagnostics.empty());
      for (const auto &d : loaded.diagnostics) CHECK(d.where.file == "mangled.yaml");
    }
  }
  CHECK(rejected > 500);
}
