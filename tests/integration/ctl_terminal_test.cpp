// riskgatectl's human output on hostile text: escape sequences (OSC 52 clipboard writes, screen
// erases), CR, backspaces, C1 and bidi controls in a decision's fields reach the operator's terminal
// only as visible escapes, and -o json keeps them as data. The hostile bytes are written through the
// real DecisionLog (every field riskgatectl prints), and sent by a client to a real riskgated in a
// token's kid (which the proxy lets through whatever its path rules: it is base64url on the wire).
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <riskgate/admin/admin.h>
#include <riskgate/audit/decision_log.h>
#include <riskgate/identity/encoding.h>
#include <riskgate/identity/jwt_sign.h>

#include "support/capture.h"
#include "support/kernel_env.h"
#include "support/lab.h"
#include "support/upstream.h"

namespace fs = std::filesystem;
using namespace riskgate;

namespace {

// OSC 52 (sets the clipboard to "rm -rf ~"), an erase, CR, BS, TAB, LF, DEL, C1 CSI, RLO (so
// "gpj.exe" reads "exe.jpg"), and a backslash that would forge "\x1b" if it were not doubled.
const std::string kHostile =
    "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\r\b\t\n\x7f\xc2\x9b"
    "31m\xe2\x80\xaegpj.exe\\x1b";
// The same as riskgatectl shows it.
const std::string kShown =
    "\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\x0d\\x08\\x09\\x0a\\x7f\\u009b31m\\u202egpj.exe\\\\x1b";

// The first thing in riskgatectl's output a terminal would act on instead of showing ("" when
// none): a C0 byte other than the line-ending LF, DEL, a C1 control or a bidi control.
std::string first_terminal_control(const std::string &out)
{
  static const std::string kBidi[] = {"\xd8\x9c",     "\xe2\x80\x8e", "\xe2\x80\x8f", "\xe2\x80\xaa",
                                      "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae",
                                      "\xe2\x81\xa6", "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9"};
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto byte = static_cast<unsigned char>(out[i]);
    if ((byte < 0x20 && byte != '\n') || byte == 0x7f)
      return fmt::format("byte 0x{:02x} at {}", byte, i);
    if (byte == 0xc2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) <= 0x9f &&
        static_cast<unsigned char>(out[i + 1]) >= 0x80)
      return fmt::format("C1 control at {}", i);
    for (const auto &bidi : kBidi)
      if (out.compare(i, bidi.size(), bidi) == 0)
        return fmt::format("bidi control at {}", i);
  }
  return "";
}

// riskgatectl ARGS as the operator sees it: exit code, and its output checked for terminal controls.
test::Captured shown(const std::string &args)
{
  auto ran = test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl " + args);
  INFO(args);
  INFO(ran.out);
  CHECK(first_terminal_control(ran.out) == "");
  return ran;
}

Decision hostile_decision(std::uint64_t id)
{
  Decision d;
  d.id = id;
  d.time_unix_ns = static_cast<std::uint64_t>(std::time(nullptr)) * 1'000'000'000ull;
  d.service = "orders" + kHostile;
  d.source_identity = 7;
  d.source_identity_name = "batch" + kHostile;
  d.source_address = "10.0.0.2:4321" + kHostile;
  d.method = "GET" + kHostile;
  d.route = "/orders/" + kHostile;
  d.rule = "rule" + kHostile;
  d.policy_version = "v" + kHostile;
  d.token_fingerprint = "fp" + kHostile;
  d.score = 100;
  d.action = Action::block;
  d.contributions = {{"rate" + kHostile, 100, "evidence " + kHostile}};
  return d;
}

struct HostileLog {
  fs::path dir = fs::temp_directory_path() / test::unique_name("rgt-ctl-terminal");
  std::string path = (dir / "decisions.jsonl").string();
  std::unique_ptr<audit::DecisionLog> log;

  HostileLog()
  {
    fs::create_directories(dir);
    audit::LogOptions options;
    options.path = path;
    auto opened = audit::DecisionLog::open(options);
    REQUIRE(opened.ok());
    log = std::move(*opened);
  }
  ~HostileLog()
  {
    log.reset();
    fs::remove_all(dir);
  }
  // Waits until the writer has put decision `id` on disk.
  void record(std::uint64_t id)
  {
    log->record(hostile_decision(id));
    REQUIRE(test::eventually(
        [&] { return test::read_text(path).find(fmt::format("\"id\":{}", id)) != std::string::npos; }, 5000));
  }
  std::string flags() const
  {
    return "--audit-log " + path + " --admin-socket " + (dir / "none.sock").string();
  }
};

}  // namespace

TEST_CASE("decisions and explain show hostile log fields escaped; -o json keeps them as they were")
{
  HostileLog log;
  log.record(501);

  const auto table = shown(log.flags() + " decisions");
  CHECK(table.code == 0);
  CHECK(table.out.find("/orders/" + kShown) != std::string::npos);
  CHECK(table.out.find("batch" + kShown) != std::string::npos);

  const auto explain = shown(log.flags() + " explain 501");
  CHECK(explain.code == 0);
  for (const auto &field :
       {"GET" + kShown + " /orders/" + kShown, "-> orders" + kShown, "by rule rule" + kShown,
        "policy v" + kShown + ", token fp" + kShown, "evidence " + kShown})
    CHECK_MESSAGE(explain.out.find(field) != std::string::npos, field);

  const auto json =
      test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl -o json " + log.flags() + " explain 501");
  CHECK(json.code == 0);
  const auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["route"] == "/orders/" + kHostile);
  CHECK(parsed["contributions"][0]["evidence"] == "evidence " + kHostile);
}

TEST_CASE("decisions --follow prints new hostile decisions escaped")
{
  HostileLog log;
  log.record(601);
  const std::string followed = (log.dir / "followed.txt").string();
  test::Process follower({std::string(RG_BINARY_DIR) + "/riskgatectl", "--audit-log", log.path,
                          "--admin-socket", (log.dir / "none.sock").string(), "decisions", "--follow"},
                         "", followed);
  // The follower reads the file from its end once it has printed the table: decisions keep coming
  // until one appended after that shows.
  std::uint64_t id = 602;
  CHECK(test::eventually(
      [&] {
        log.record(id++);
        return test::read_lines(followed).size() >= 3;  // header, decision 601, a followed one
      },
      10000));
  follower.kill(SIGKILL);
  const std::string out = test::read_text(followed);
  INFO(out);
  CHECK(first_terminal_control(out) == "");
  CHECK(out.find("GET" + kShown + " /orders/" + kShown) != std::string::npos);
}

TEST_CASE("audit verify escapes a hostile file name and its JSON stays valid")
{
  const std::string name = "/tmp/rgt-\x1b[2J\xff.jsonl";
  const auto text = shown("audit verify '" + name + "'");
  CHECK(text.code == 1);
  CHECK(text.out.find("/tmp/rgt-\\x1b[2J\\xff.jsonl:0: cannot open") != std::string::npos);
  const auto json = test::capture(
      fmt::format("({}/riskgatectl -o json audit verify '{}' 2>/dev/null)", RG_BINARY_DIR, name));
  CHECK(json.code == 1);
  const auto parsed = nlohmann::json::parse(json.out, nullptr, false);
  REQUIRE(parsed.is_object());
  CHECK(parsed["files"][0] == "/tmp/rgt-\x1b[2J\xef\xbf\xbd.jsonl");  // the byte that is not UTF-8: U+FFFD
}

TEST_CASE("a client's hostile token kid reaches explain, through a real riskgated, only escaped")
{
  const std::string work = "/tmp/" + test::unique_name("rgt-ctl-kid");
  fs::create_directories(work + "/policies");
  const auto key = identity::generate_signing_key(identity::Alg::ES256, "key-1");
  REQUIRE(key.ok());
  std::ofstream(work + "/jwks.json") << *identity::jwks_document({&*key});
  const unsigned short port = test::free_port();
  std::ofstream(work + "/policies/orders.yaml")
      << "apiVersion: riskgate.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n"
      << "  listen: \"127.0.0.1:" << port << "\"\n  upstream: \"127.0.0.1:9\"\n"
      << "  auth:\n    jwt: {required: true, issuers: [\"https://issuer.example\"], jwks: " << work
      << "/jwks.json}\n";
  const std::string log = work + "/riskgated.log";
  test::Process agent({std::string(RG_BINARY_DIR) + "/riskgated", "--no-kernel", "--workers", "1",
                       "--policy-dir", work + "/policies", "--audit-log", work + "/decisions.jsonl",
                       "--admin-socket", work + "/admin.sock", "--admin-metrics", "off"},
                      "", log);
  REQUIRE_MESSAGE(test::eventually(
                      [&] {
                        const auto reply = admin::request(work + "/admin.sock", {{"cmd", "status"}});
                        return reply.ok() && (*reply)["agent"] == "up";
                      },
                      5000),
                  test::read_text(log));

  // The header is JSON, so the client spells the bytes as JSON escapes; the verifier decodes them
  // and quotes the kid in its reason ("unknown kid ..."), which becomes the decision's evidence.
  const std::string header = R"({"alg":"ES256","kid":"\u001b]52;c;cm0gLXJmIH4=\u0007\r\u202egpj.exe"})";
  const std::string token =
      identity::base64url_encode(header) + "." + identity::base64url_encode("{}") + ".AAAA";
  const std::string answer =
      test::raw_exchange(port, "GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                                   "\r\nConnection: close\r\n\r\n");
  CHECK(answer.starts_with("HTTP/1.1 401"));

  const std::string flags = "--audit-log " + work + "/decisions.jsonl --admin-socket " + work + "/admin.sock";
  REQUIRE(test::eventually(
      [&] { return test::read_text(work + "/decisions.jsonl").find("unknown kid") != std::string::npos; },
      5000));
  const auto listed = nlohmann::json::parse(
      test::capture(std::string(RG_BINARY_DIR) + "/riskgatectl -o json " + flags + " decisions").out);
  REQUIRE(listed.size() == 1);
  const auto explain = shown(flags + " explain " + std::to_string(listed[0]["id"].get<std::uint64_t>()));
  CHECK(explain.code == 0);
  CHECK(explain.out.find("unknown kid \"\\x1b]52;c;cm0gLXJmIH4=\\x07\\x0d\\u202egpj.exe\"") !=
        std::string::npos);
  CHECK(shown(flags + " decisions").code == 0);
  CHECK(shown(flags + " --pin-root /sys/fs/bpf/rgt-none status").code == 0);

  agent.kill(SIGTERM);
  CHECK(agent.wait(5000).has_value());
  fs::remove_all(work);
}
