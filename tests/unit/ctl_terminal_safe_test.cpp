// terminal_safe: what riskgatectl's human output makes of hostile text, byte by byte.
#include <doctest/doctest.h>

#include <vector>

#include "ctl/terminal_safe.h"

using riskgate::ctl::terminal_safe;

namespace {

struct Case {
  const char *what;
  std::string_view in;
  std::string_view out;
};

using namespace std::string_view_literals;

const Case kCases[] = {
    {"plain ASCII", "GET /orders/{id}"sv, "GET /orders/{id}"sv},
    {"CSI colour and erase", "\x1b[31mred\x1b[2J"sv, "\\x1b[31mred\\x1b[2J"sv},
    {"OSC 52 clipboard write, BEL-ended", "\x1b]52;c;cm0gLXJmIH4=\x07"sv, "\\x1b]52;c;cm0gLXJmIH4=\\x07"sv},
    {"OSC 8 hyperlink, ST-ended", "\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\"sv,
     "\\x1b]8;;http://evil\\x1b\\\\x\\x1b]8;;\\x1b\\\\"sv},
    {"CR and LF inside a field", "allow\r\nblock"sv, "allow\\x0d\\x0ablock"sv},
    {"C1 CSI",
     "\xc2\x9b"
     "31m"sv,
     "\\u009b31m"sv},
    {"RLO U+202E", "/admin\xe2\x80\xaegpj.txt"sv, "/admin\\u202egpj.txt"sv},
    {"é and 日本 are kept", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"sv,
     "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"sv},
    {"a 4-byte code point is kept", "\xf0\x9f\x94\x92"sv, "\xf0\x9f\x94\x92"sv},
    {"backslash doubled", "a\\x1b"sv, "a\\\\x1b"sv},
    {"truncated sequence, then ASCII", "\xe2\x80z"sv, "\\xe2\\x80z"sv},
};

// UTF-8 of a code point below U+10000.
std::string utf8(char32_t c)
{
  if (c < 0x80)
    return std::string(1, static_cast<char>(c));
  if (c < 0x800)
    return {static_cast<char>(0xc0 | c >> 6), static_cast<char>(0x80 | (c & 0x3f))};
  return {static_cast<char>(0xe0 | c >> 12), static_cast<char>(0x80 | (c >> 6 & 0x3f)),
          static_cast<char>(0x80 | (c & 0x3f))};
}

}  // namespace

TEST_CASE("terminal_safe escapes what a terminal would act on and keeps all other text")
{
  for (const auto &c : kCases) {
    INFO(std::string(c.what));
    CHECK(terminal_safe(c.in) == c.out);
  }
}

TEST_CASE(
    "terminal_safe shows every C0, DEL, C1 and bidi control as an escape, and their neighbours as they are")
{
  std::vector<char32_t> controls = {0x7f, 0x061c, 0x200e, 0x200f};
  for (char32_t c = 0; c < 0x20; ++c) controls.push_back(c);
  for (char32_t c = 0x80; c <= 0x9f; ++c) controls.push_back(c);
  for (char32_t c = 0x202a; c <= 0x202e; ++c) controls.push_back(c);
  for (char32_t c = 0x2066; c <= 0x2069; ++c) controls.push_back(c);
  for (const char32_t c : controls) {
    const auto code = static_cast<unsigned>(c);
    INFO(code);
    CHECK(terminal_safe(utf8(c)) ==
          (c < 0x80 ? fmt::format("\\x{:02x}", code) : fmt::format("\\u{:04x}", code)));
  }
  // NBSP, ZWJ (emoji sequences), LRM's and the isolates' neighbours.
  for (const char32_t c : {0x20, 0x7e, 0xa0, 0x061b, 0x200d, 0x2010, 0x2029, 0x202f, 0x2065, 0x206a}) {
    INFO(static_cast<unsigned>(c));
    CHECK(terminal_safe(utf8(c)) == utf8(c));
  }
}

TEST_CASE("terminal_safe shows each byte of what is not well-formed UTF-8 as \\xNN")
{
  // A stray continuation byte, bytes never in UTF-8, a truncated sequence, overlong forms of ESC and
  // "/", a surrogate, a code point past U+10FFFF.
  for (const auto bad : {"\x80"sv, "\xff\xfe"sv, "\xe6\x97"sv, "\xc0\x9b"sv, "\xe0\x80\xaf"sv,
                         "\xed\xa0\x80"sv, "\xf4\x90\x80\x80"sv}) {
    std::string bytes;
    for (const char c : bad) bytes += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    CHECK(terminal_safe(bad) == bytes);
  }
}

TEST_CASE("terminal_safe output holds no control, C1 or bidi character whatever the input")
{
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  every_byte += "\xc2\x85\xe2\x80\xae\xe2\x81\xa6";
  const std::string out = terminal_safe(every_byte);
  for (const char c : out) {
    const auto byte = static_cast<unsigned char>(c);
    CHECK_MESSAGE((byte >= 0x20 && byte != 0x7f), "byte ", static_cast<int>(byte));
  }
  CHECK(out.find("\xc2\x85") == std::string::npos);
  CHECK(out.find("\xe2\x80\xae") == std::string::npos);
  CHECK(out.find("\xe2\x81\xa6") == std::string::npos);
}
