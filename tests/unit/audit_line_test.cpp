// The decision writer serialises decisions directly (no JSON tree per request): its lines must say
// exactly what to_json() says, stay valid JSON whatever bytes a request carried, and verify.
#include <doctest/doctest.h>

#include <riskgate/audit/decision_log.h>

#include "support/decision.h"

using namespace riskgate;

namespace {

// The shared sample, with evidence that needs escaping: a quote, a backslash and a newline.
Decision sample()
{
  Decision d = test::sample_decision();
  d.contributions[0].evidence = "token \"svc:frontend\" \\ presented by batch\n";
  return d;
}

}  // namespace

TEST_CASE("a directly serialised decision says what to_json says, and seals into a verifiable line")
{
  for (const Action action : {Action::allow, Action::challenge, Action::limit, Action::block}) {
    Decision d = sample();
    d.action = action;
    d.retry_after_s = 5;
    std::string line;
    audit::append_decision_body(line, d);
    audit::seal_body(line, 9, std::string(64, 'a'), nullptr);
    const auto parsed = nlohmann::json::parse(line);
    auto expected = audit::to_json(d);
    expected["kind"] = "decision";
    expected["seq"] = 9;
    expected["prev"] = std::string(64, 'a');
    auto got = parsed;
    got.erase("hash");
    CHECK(got == expected);
    CHECK(audit::decision_from_json(parsed).ok());
  }
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD; valid multi-byte text is kept")
{
  Decision d = sample();
  d.route = std::string("/caf\xc3\xa9/\xff\xfe/\xe2\x82");  // é, two stray bytes, a truncated sequence
  d.method = "GET\x01";
  std::string line;
  audit::append_decision_body(line, d);
  audit::seal_body(line, 1, std::string(64, '0'), nullptr);
  const auto parsed = nlohmann::json::parse(line);  // throws if the line is not valid JSON
  CHECK(parsed["route"] == "/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(parsed["method"] == "GET\x01");
}
