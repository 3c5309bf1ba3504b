#include "http.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "path.h"

namespace riskgate::proxy {

namespace {

HttpParser &self(llhttp_t *p)
{
  return *static_cast<HttpParser *>(p->data);
}

char lower(char c)
{
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s)
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool istarts_with(std::string_view s, std::string_view prefix)
{
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

void append_number(std::string &out, std::uint64_t value, int base = 10)
{
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value, base);
  out.append(buf.data(), end);
}

// Whether `list` (a comma-separated header value) contains `token`, case-insensitively.
bool list_contains(std::string_view list, std::string_view token)
{
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void append_json_string(std::string &out, std::string_view s)
{
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

bool iequals(std::string_view a, std::string_view b)
{
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

HttpParser::HttpParser(llhttp_type_t type, const HttpLimits &limits, HeadHandler &handler)
    : limits_(limits), handler_(handler)
{
  // One settings table for every parser (llhttp keeps a pointer to it): not one copy per connection.
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = cb_message_begin;
    s.on_url = cb_url;
    s.on_header_field = cb_header_field;
    s.on_header_value = cb_header_value;
    s.on_header_value_complete = cb_header_value_complete;
    s.on_headers_complete = cb_headers_complete;
    s.on_body = cb_body;
    s.on_message_complete = cb_message_complete;
    return s;
  }();
  llhttp_init(&parser_, type, &settings);  // lenient flags all zero: strict
  parser_.data = this;
}

void HttpParser::fail(int status, std::string reason)
{
  if (error_.status == 0)
    error_ = HttpError{status, std::move(reason)};
}

bool HttpParser::make_target_canonical(const PathOptions &options)
{
  const auto canonical = canonicalise_target(head_.bytes.data() + target_.offset, target_.length, options);
  if (!canonical.refusal.empty()) {
    fail(400, std::string(canonical.refusal));
    return false;
  }
  target_.length = static_cast<std::uint32_t>(canonical.length);
  return true;
}

bool HttpParser::append_head(const char *at, std::size_t length, Span &span)
{
  if (head_.bytes.size() + length > limits_.max_head_bytes) {
    fail(431, "request header fields too large");
    return false;
  }
  if (span.length == 0)
    span.offset = static_cast<std::uint32_t>(head_.bytes.size());
  head_.bytes.append(at, length);
  span.length += static_cast<std::uint32_t>(length);
  return true;
}

int HttpParser::cb_message_begin(llhttp_t *p)
{
  auto &s = self(p);
  s.head_.bytes.clear();
  s.head_.fields.clear();
  s.target_ = {};
  s.in_value_ = false;
  s.in_message_ = true;
  s.head_complete_ = false;
  s.content_length_ = 0;
  s.body_bytes_ = 0;
  s.sink_ = nullptr;
  s.framing_ = Framing::none;
  return 0;
}

int HttpParser::cb_url(llhttp_t *p, const char *at, std::size_t length)
{
  auto &s = self(p);
  return s.append_head(at, length, s.target_) ? 0 : -1;
}

int HttpParser::cb_header_field(llhttp_t *p, const char *at, std::size_t length)
{
  auto &s = self(p);
  if (s.head_complete_)
    return 0;  // trailer fields of a chunked body: dropped (the proxy re-emits an empty trailer)
  if (s.in_value_ || s.head_.fields.empty()) {
    if (s.head_.fields.size() >= s.limits_.max_headers) {
      s.fail(431, "too many header fields");
      return -1;
    }
    s.head_.fields.emplace_back();
    s.in_value_ = false;
    s.value_started_ = false;
  }
  return s.append_head(at, length, s.head_.fields.back().first) ? 0 : -1;
}

int HttpParser::cb_header_value(llhttp_t *p, const char *at, std::size_t length)
{
  auto &s = self(p);
  if (s.head_complete_) {
    if (length > s.limits_.max_head_bytes) {
      s.fail(431, "trailer fields too large");
      return -1;
    }
    return 0;
  }
  // llhttp 8 accepts obs-fold: the continuation arrives as another value piece although the previous
  // piece ended at a line break rather than at the end of the input.
  if (s.value_started_ && !s.value_open_) {
    s.fail(400, "obs-fold in a header field");
    return -1;
  }
  s.value_started_ = true;
  s.value_open_ = at + length == s.feed_end_;
  s.in_value_ = true;
  return s.append_head(at, length, s.head_.fields.back().second) ? 0 : -1;
}

int HttpParser::cb_header_value_complete(llhttp_t *p)
{
  auto &s = self(p);
  s.in_value_ = true;  // an empty value fires no on_header_value, only this
  return 0;
}

int HttpParser::cb_headers_complete(llhttp_t *p)
{
  auto &s = self(p);
  s.head_complete_ = true;
  if (p->flags & F_CONTENT_LENGTH) {
    s.content_length_ = p->content_length;
    if (p->type == HTTP_REQUEST && s.content_length_ > s.limits_.max_body_bytes) {
      s.fail(413, "request body larger than the limit");
      return -1;
    }
  }
  return s.handler_.on_head(s);
}

int HttpParser::cb_body(llhttp_t *p, const char *at, std::size_t length)
{
  auto &s = self(p);
  s.body_bytes_ += length;
  if (p->type == HTTP_REQUEST && s.body_bytes_ > s.limits_.max_body_bytes) {
    s.fail(413, "request body larger than the limit");
    return -1;
  }
  if (s.sink_ == nullptr)
    return 0;
  if (s.framing_ == Framing::chunked) {
    append_number(*s.sink_, length, 16);
    s.sink_->append("\r\n");
    s.sink_->append(at, length);
    s.sink_->append("\r\n");
  } else {
    s.sink_->append(at, length);
  }
  return 0;
}

int HttpParser::cb_message_complete(llhttp_t *p)
{
  self(p).in_message_ = false;
  return HPE_PAUSED;  // stop right after the message (step() ends it): what follows waits for the response
}

std::size_t HttpParser::HeadLineEnds::scan(const char *data, std::size_t len)
{
  std::size_t at = 0;
  while (!started_ && at < len) {
    if (data[at] != '\r' && data[at] != '\n') {
      started_ = true;
      break;
    }
    previous_ = data[at++];
  }
  while (!done_ && at < len) {
    const void *found = std::memchr(data + at, '\n', len - at);
    if (found == nullptr) {
      line_ += static_cast<std::uint32_t>(len - at);
      previous_ = data[len - 1];
      return std::string_view::npos;
    }
    const auto lf = static_cast<std::size_t>(static_cast<const char *>(found) - data);
    line_ += static_cast<std::uint32_t>(lf - at);
    if ((lf > 0 ? data[lf - 1] : previous_) != '\r')
      return lf;
    done_ = line_ == 1;  // CRLF alone: the blank line that ends the head
    line_ = 0;
    previous_ = '\n';
    at = lf + 1;
  }
  return std::string_view::npos;
}

HttpParser::Step HttpParser::step(llhttp_errno_t rc, const char *data, std::size_t len)
{
  if (rc == HPE_OK)
    return {Status::more, len};
  if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
    const char *pos = llhttp_get_error_pos(&parser_);
    const std::size_t consumed =
        pos != nullptr && data != nullptr ? static_cast<std::size_t>(pos - data) : len;
    if (parser_.type == HTTP_REQUEST && chunked() && data != nullptr) {
      // A chunked body ends with a blank line, which must be CRLF (see HeadLineEnds).
      const char before_last = consumed >= 2   ? data[consumed - 2]
                               : consumed == 1 ? last_fed_[1]
                                               : last_fed_[0];
      if (before_last != '\r') {
        fail(400, "malformed request: line ended by LF without CR");
        return {Status::error, len};
      }
    }
    if (sink_ != nullptr && framing_ == Framing::chunked)
      sink_->append("0\r\n\r\n");  // only now that the message is known whole
    return {Status::done, consumed};
  }
  if (error_.status == 0) {
    std::string reason = parser_.type == HTTP_REQUEST ? "malformed request: " : "malformed response: ";
    const char *why = llhttp_get_error_reason(&parser_);
    for (const char *c = why != nullptr ? why : llhttp_errno_name(rc); *c != '\0'; ++c) reason += lower(*c);
    fail(400, std::move(reason));
  }
  return {Status::error, len};
}

HttpParser::Step HttpParser::feed(const char *data, std::size_t len)
{
  feed_end_ = data + len;
  if (parser_.type == HTTP_REQUEST && head_line_ends_.scan(data, len) != std::string_view::npos) {
    fail(400, "malformed request: line ended by LF without CR");
    return {Status::error, len};
  }
  const Step result = step(llhttp_execute(&parser_, data, len), data, len);
  if (len >= 2) {
    last_fed_[0] = data[len - 2];
    last_fed_[1] = data[len - 1];
  } else if (len == 1) {
    last_fed_[0] = last_fed_[1];
    last_fed_[1] = data[0];
  }
  return result;
}

HttpParser::Step HttpParser::finish()
{
  if (!in_message_)
    return {Status::more, 0};
  const auto rc = llhttp_finish(&parser_);
  if (in_message_ && (rc == HPE_OK || rc == HPE_INVALID_EOF_STATE)) {
    fail(400, "connection closed mid-message");
    return {Status::error, 0};
  }
  return step(rc, nullptr, 0);
}

void HttpParser::next_message()
{
  head_line_ends_.restart();
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE)
    llhttp_reset(&parser_);  // Upgrade was stripped: the connection stays plain HTTP/1.1
  else if (llhttp_get_errno(&parser_) == HPE_PAUSED)
    llhttp_resume(&parser_);
}

void HttpParser::reset()
{
  llhttp_reset(&parser_);
  head_line_ends_.restart();
  in_message_ = false;
  head_complete_ = false;
  error_ = {};
}

std::optional<std::string_view> HttpParser::header(std::string_view name) const
{
  for (const auto &[n, v] : head_.fields)
    if (iequals(field(n), name))
      return field(v);
  return std::nullopt;
}

// ---- request policy ----

HttpError validate_request(const HttpParser &request)
{
  if (request.method() == "CONNECT")
    return {405, "CONNECT is not proxied"};
  const auto target = request.target();
  if (target.empty() || (target.front() != '/' && !(target == "*" && request.method() == "OPTIONS")))
    return {400, "request-target must be origin-form"};

  // RFC 9110 tchar; llhttp 8 lets a space before the colon through.
  static constexpr auto is_tchar = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };
  int hosts = 0, lengths = 0, encodings = 0;
  std::string_view encoding;
  for (std::size_t i = 0; i < request.header_count(); ++i) {
    const auto name = request.header_name(i);
    const auto value = request.header_value(i);
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_tchar))
      return {400, "invalid header field name"};
    for (const char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\r' || c == '\n')
        return {400, "obs-fold or line break in a header value"};
      if ((u < 0x20 && c != '\t') || u == 0x7f)
        return {400, "control character in a header value"};
    }
    if (iequals(name, "host"))
      ++hosts;
    else if (iequals(name, "content-length"))
      ++lengths;
    else if (iequals(name, "transfer-encoding")) {
      ++encodings;
      encoding = trim(value);
    }
  }
  if (request.http_minor() >= 1 ? hosts != 1 : hosts > 1)
    return {400, hosts == 0 ? "missing Host header" : "duplicate Host header"};
  if (lengths > 1)
    return {400, "duplicate Content-Length"};
  if (encodings > 0 && lengths > 0)
    return {400, "both Content-Length and Transfer-Encoding"};
  if (encodings > 1)
    return {400, "duplicate Transfer-Encoding"};
  if (encodings == 1) {
    if (request.http_minor() == 0)
      return {400, "Transfer-Encoding on HTTP/1.0"};
    if (!iequals(encoding, "chunked")) {
      const auto comma = encoding.rfind(',');
      const auto last = trim(comma == std::string_view::npos ? encoding : encoding.substr(comma + 1));
      if (!iequals(last, "chunked"))
        return {400, "Transfer-Encoding not ending in chunked"};
      return {501, "transfer-coding other than chunked"};
    }
  }
  return {};
}

bool is_hop_by_hop(std::string_view name, std::string_view connection_header)
{
  static constexpr std::array<std::string_view, 9> dropped = {
      "connection",        "keep-alive", "proxy-connection", "te",    "trailer",
      "transfer-encoding", "upgrade",    "content-length",   "expect"};
  for (const auto d : dropped)
    if (iequals(name, d))
      return true;
  if (istarts_with(name, kReservedHeaderPrefix))
    return true;
  return !connection_header.empty() && !iequals(name, "host") && list_contains(connection_header, name);
}

namespace {

void emit_headers(const HttpParser &message, std::string &out)
{
  const auto connection = message.header("connection").value_or(std::string_view{});
  for (std::size_t i = 0; i < message.header_count(); ++i) {
    const auto name = message.header_name(i);
    if (is_hop_by_hop(name, connection))
      continue;
    out.append(name);
    out.append(": ");
    out.append(message.header_value(i));
    out.append("\r\n");
  }
}

}  // namespace

void emit_request_head(const HttpParser &request, std::string_view extra_headers,
                       std::string_view default_host, std::string &out)
{
  out.append(request.method());
  out += ' ';
  out.append(request.target());
  out.append(" HTTP/1.1\r\n");
  if (!request.header("host")) {
    out.append("Host: ");
    out.append(default_host);
    out.append("\r\n");
  }
  emit_headers(request, out);
  out.append(extra_headers);
  if (request.chunked()) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (request.has_content_length()) {
    out.append("Content-Length: ");
    append_number(out, request.content_length());
    out.append("\r\n");
  }
  out.append("\r\n");
}

void emit_response_head(const HttpParser &response, Framing framing, bool close, bool keep_alive_10,
                        std::string &out)
{
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(response.status_code()));
  out += ' ';
  out.append(status_text(response.status_code()));
  out.append("\r\n");
  emit_headers(response, out);
  if (framing == Framing::chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (response.has_content_length() &&
             (framing == Framing::length || (framing == Framing::none && response.status_code() != 204))) {
    // A bodiless answer keeps its Content-Length (a HEAD's or a 304's describes the resource), except
    // a 204, which must not have one (RFC 9110 8.6): a client would wait for that many bytes.
    out.append("Content-Length: ");
    append_number(out, response.content_length());
    out.append("\r\n");
  }
  if (close)
    out.append("Connection: close\r\n");
  else if (keep_alive_10)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
}

void emit_error_response(int status, std::string_view reason, std::uint64_t decision_id,
                         std::string_view extra_headers, bool close, std::string &out)
{
  std::string body;
  body.reserve(96 + reason.size());
  body.append("{\"status\":");
  append_number(body, static_cast<std::uint64_t>(status));
  body.append(",\"error\":");
  append_json_string(body, status_text(status));
  body.append(",\"reason\":");
  append_json_string(body, reason);
  body.append(",\"decision_id\":");
  if (decision_id == 0) {
    body.append("null");
  } else {
    body += '"';
    append_number(body, decision_id);
    body += '"';
  }
  body.append("}\n");

  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(status));
  out += ' ';
  out.append(status_text(status));
  out.append("\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ");
  append_number(out, body.size());
  out.append("\r\n");
  out.append(extra_headers);
  if (close)
    out.append("Connection: close\r\n");
  out.append("\r\n");
  out.append(body);
}

std::string_view status_text(int status)
{
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:
      return status < 200   ? "Informational"
             : status < 300 ? "Success"
             : status < 400 ? "Redirection"
             : status < 500 ? "Client Error"
                            : "Server Error";
  }
}

}  // namespace riskgate::proxy
