#include <riskgate/proxy/request.h>

#include <algorithm>

#include "http.h"

namespace riskgate {

std::optional<std::string_view> RequestView::header(std::string_view name) const
{
  for (const auto &h : headers)
    if (proxy::iequals(h.name, name))
      return h.value;
  return std::nullopt;
}

namespace {

bool visible(char c, bool keep_tab)
{
  return (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) || (keep_tab && c == '\t');
}

void append_visible(std::string &out, std::string_view text, bool keep_tab)
{
  if (std::all_of(text.begin(), text.end(), [&](char c) { return visible(c, keep_tab); })) {
    out.append(text);  // the usual case, in one copy
    return;
  }
  for (const char c : text)
    if (visible(c, keep_tab))
      out += c;
}

}  // namespace

void HookVerdict::reset()
{
  kind = Kind::forward;
  status = 0;
  reason.clear();
  decision_id = 0;
  headers.clear();
  close_after = false;
}

void HookVerdict::add_header(std::string_view name, std::string_view value)
{
  append_visible(headers, name, false);
  headers.append(": ");
  append_visible(headers, value, true);
  headers.append("\r\n");
}

std::optional<std::string_view> HookVerdict::header(std::string_view name) const
{
  const std::string_view lines = headers;
  for (std::size_t at = 0; at < lines.size();) {
    const auto end = lines.find("\r\n", at);
    const auto line = lines.substr(at, end - at);
    const auto colon = line.find(": ");
    if (colon != std::string_view::npos && proxy::iequals(line.substr(0, colon), name))
      return line.substr(colon + 2);
    if (end == std::string_view::npos)
      break;
    at = end + 2;
  }
  return std::nullopt;
}

}  // namespace riskgate
