// The one duration syntax (riskgate/common/duration.h) that policies, the settings file and
// riskgatectl share: every form it takes, every form it refuses and why, and the formatter that
// writes what the parser reads back.
#include <doctest/doctest.h>

#include <string>

#include <riskgate/common/duration.h>

using riskgate::format_duration_ms;
using riskgate::parse_duration_ms;

namespace {

std::string refusal(const std::string &text)
{
  const auto parsed = parse_duration_ms(text);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error();
}

}  // namespace

TEST_CASE("durations: each unit, and units chained largest first")
{
  CHECK(*parse_duration_ms("500ms") == 500);
  CHECK(*parse_duration_ms("90s") == 90'000);
  CHECK(*parse_duration_ms("10m") == 600'000);
  CHECK(*parse_duration_ms("2h") == 7'200'000);
  CHECK(*parse_duration_ms("2d") == 172'800'000);
  CHECK(*parse_duration_ms("1h30m") == 5'400'000);
  CHECK(*parse_duration_ms("1d2h3m4s5ms") == 93'784'005);
  CHECK(*parse_duration_ms("1s500ms") == 1500);
  CHECK(*parse_duration_ms("0s") == 0);
  CHECK(*parse_duration_ms("90m") == 5'400'000);  // a count may exceed the next unit up
}

TEST_CASE("durations: every refusal says what is wrong")
{
  CHECK(refusal("90") == "'90' is not a duration: 90 has no unit; write 90s, 90m, 90h or 90d");
  CHECK(refusal("0").find("0 has no unit") != std::string::npos);
  CHECK(refusal("1h30").find("'1h30' is not a duration: 30 has no unit") == 0);
  CHECK(refusal("").find("it is empty") != std::string::npos);
  CHECK(refusal("10x").find("unknown unit 'x' (units: ms, s, m, h, d)") != std::string::npos);
  CHECK(refusal("5sec").find("unknown unit 'sec'") != std::string::npos);
  CHECK(refusal("30m1h").find("units go from the largest to the smallest, each once") != std::string::npos);
  CHECK(refusal("1m1m").find("each once") != std::string::npos);
  CHECK(refusal("1.5h").find("whole numbers only") != std::string::npos);
  for (const char *text : {"soon", "h", "-5s", "+5s", " 5s", "5s ", "5 s", "1h-30m"})
    CHECK_MESSAGE(refusal(text).find(std::string("'") + text +
                                     "' is not a duration: expected a whole number "
                                     "with a unit") == 0,
                  text);
  CHECK(refusal("99999999999999999999s").find("too large") != std::string::npos);
  CHECK(refusal("213503982335d").find("too large") != std::string::npos);
}

TEST_CASE("durations: the formatter writes what the parser reads back")
{
  CHECK(format_duration_ms(5'400'000) == "1h30m");
  CHECK(format_duration_ms(172'800'000) == "2d");
  CHECK(format_duration_ms(1500) == "1s500ms");
  CHECK(format_duration_ms(600'000) == "10m");
  CHECK(format_duration_ms(0) == "0s");
  for (const std::uint64_t ms : {1ull, 999ull, 61'001ull, 93'784'005ull, 86'400'000ull * 400})
    CHECK(*parse_duration_ms(format_duration_ms(ms)) == ms);
}

TEST_CASE("durations: a countdown keeps its largest units")
{
  CHECK(format_duration_ms(598'412, 2) == "9m58s");
  CHECK(format_duration_ms(93'784'005, 2) == "1d2h");
  CHECK(format_duration_ms(3'600'001, 2) == "1h");  // the cut-off units are zero but for the ms
  CHECK(format_duration_ms(412, 2) == "412ms");
  CHECK(format_duration_ms(0, 2) == "0s");
}
