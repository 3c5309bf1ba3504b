// Text from requests, the decision log, the admin socket or the pinned maps, made safe to print on
// an operator's terminal: a client can put escape sequences (cursor moves, colours, OSC 52 clipboard
// writes), CR, backspaces or bidi overrides into a path, a token's kid or alg, and printed raw they
// would rewrite the screen. riskgatectl's human output passes every such string through here (Table,
// print_line, fail); -o json does not, it is JSON for programs.
//
// Escaped, everything else kept as it is (so "é" and "日本" read as themselves):
//   C0 controls (TAB and LF too: a field never breaks the line) and DEL   -> \x1b, \x09, \x7f
//   C1 controls U+0080..U+009F and the bidi controls U+061C, U+200E, U+200F,
//   U+202A..U+202E, U+2066..U+2069                                        -> \u0085, \u202e
//   each byte that is not part of well-formed UTF-8                       -> \xff
//   a backslash                                                           -> \\ (so no escape can be forged)
// Header-only so that the unit tests reach it: ctl is linked into riskgatectl alone.
#pragma once

#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace riskgate::ctl {

namespace terminal_detail {

struct CodePoint {
  char32_t value = 0;
  std::size_t length = 0;  // 0: the bytes at this position are not well-formed UTF-8
};

// The code point encoded at text[at]; overlong forms, surrogates and values past U+10FFFF are not
// well-formed (RFC 3629).
inline CodePoint decode_utf8(std::string_view text, std::size_t at)
{
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80)
    return {lead, 1};
  std::size_t length = 0;
  char32_t smallest = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    smallest = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    smallest = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    smallest = 0x10000;
  } else {
    return {};
  }
  if (text.size() - at < length)
    return {};
  char32_t value = lead & (0x7f >> length);  // the lead byte's payload bits
  for (std::size_t i = at + 1; i < at + length; ++i) {
    if ((byte(i) & 0xc0) != 0x80)
      return {};
    value = value << 6 | (byte(i) & 0x3f);
  }
  if (value < smallest || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
    return {};
  return {value, length};
}

// What a terminal acts on instead of showing: C0, DEL, C1, and Unicode's Bidi_Control set.
inline bool is_terminal_control(char32_t c)
{
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace terminal_detail

inline std::string terminal_safe(std::string_view text)
{
  using namespace terminal_detail;
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const CodePoint c = decode_utf8(text, at);
    if (c.length == 0) {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", static_cast<unsigned char>(text[at]));
      ++at;
      continue;
    }
    if (c.value == '\\')
      out += "\\\\";
    else if (!is_terminal_control(c.value))
      out.append(text.substr(at, c.length));
    else if (c.value < 0x80)
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", static_cast<unsigned>(c.value));
    else
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c.value));
    at += c.length;
  }
  return out;
}

}  // namespace riskgate::ctl
