#include "support/http_generator.h"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>

namespace riskgate::test {

namespace {

// Each list holds the usual spelling first, then the variants parsers have disagreed on.
constexpr const char *kMethods[] = {"GET",     "POST", "POST", "PUT",   "HEAD", "DELETE", "OPTIONS", "PATCH",
                                    "CONNECT", "post", "GE T", "G\tET", "",     "TRACE",  "PRI"};
// Targets include other spellings of one path (canonical in the proxy: docs/proxy.md) and paths
// that cannot be made canonical safely.
constexpr const char *kTargets[] = {"/",
                                    "/a/b?c=d",
                                    "/%2e%2e/admin",
                                    "*",
                                    "http://svc/x",
                                    "/a b",
                                    "/a\x01",
                                    "/#frag",
                                    "//x",
                                    "/a?b=\x7f",
                                    "svc:80",
                                    "/\xc3\xa9",
                                    "/%61dmin/x",
                                    "/x/../admin/./y/",
                                    "/a/%2E%2e/b?q=%2e%2E/../",
                                    "/%7e%c3%a9%3f",
                                    "/a%2fb",
                                    "/a%5Cb",
                                    "/a\\b",
                                    "/%00",
                                    "/%zz",
                                    "/a/..",
                                    "/ADMIN"};
constexpr const char *kVersions[] = {"HTTP/1.1", "HTTP/1.1", "HTTP/1.1",  "HTTP/1.0",  "HTTP/1.2",
                                     "HTTP/2.0", "http/1.1", "HTTP/1.1 ", "HTTP/01.1", "HTTP/1"};
constexpr const char *kLengthNames[] = {"Content-Length", "content-length",   "Content-Length ",
                                        "Content_Length", "Content-Length\t", "CONTENT-LENGTH"};
constexpr const char *kEncodingNames[] = {"Transfer-Encoding", "transfer-encoding", "Transfer-Encoding ",
                                          "Transfer_Encoding", " Transfer-Encoding"};
constexpr const char *kEncodings[] = {"chunked",     "chunked",         "Chunked",       " chunked",
                                      "chunked ",    "gzip, chunked",   "chunked, gzip", "identity",
                                      "chunked\x0b", "x-chunked",       "chunked;q=1",   "gzip,chunked",
                                      "\"chunked\"", "chunked, chunked"};
constexpr const char *kLengthSpellings[] = {"{}",     "{}",   "{}",  "+{}", " {} ", "{},{}",
                                            "{}, {}", "0x{}", "-{}", "0{}", "{}.0", "99999999999999999999",
                                            ""};
constexpr const char *kChunkSizes[] = {"{:x}",  "{:x}",  "{:X}",   "000{:x}", "{:x};ext=1", "{:x};a=\"q\"",
                                       "{:x} ", " {:x}", "0x{:x}", "{:x}x",   "-{:x}",      "{:x}\t;e"};
constexpr const char *kHeaders[] = {
    "Accept: */*",
    "X-A: b",
    "Connection: close",
    "Connection: keep-alive, X-A",
    "Keep-Alive: 5",
    "X-Riskgate-Identity: admin",
    "x-riskgate-decision: 1",
    "Expect: 100-continue",
    "Upgrade: websocket",
    "Proxy-Connection: keep-alive",
    "TE: trailers",
    "X-Fold: a\r\n b",
    "X-Ctl: a\x01z",
    "X-Del: a\x7fz",
    "X-Cr: a\rz",
    "X-Lf: a\nz",
    "X-Empty:",
    ": novalue",
    "X A: b",
    "X-Tab:\tv\t",
    "X-Utf8: \xc3\xa9",
    "Trailer: X-T",
    "Cookie: s=0123456789abcdef",
};
constexpr const char *kStatusLines[] = {"HTTP/1.1 200 OK",
                                        "HTTP/1.1 201 Created",
                                        "HTTP/1.1 204 No Content",
                                        "HTTP/1.1 304 Not Modified",
                                        "HTTP/1.1 404 Not Found",
                                        "HTTP/1.1 500 Internal Server Error",
                                        "HTTP/1.1 101 Switching Protocols",
                                        "HTTP/1.0 200 OK",
                                        "HTTP/1.1 200",
                                        "HTTP/1.1 099 X",
                                        "HTTP/1.1 2000 X",
                                        "HTTP/2 200 OK",
                                        "http/1.1 200 OK",
                                        "HTTP/1.1 200  OK",
                                        "HTTP/1.1 200 O\x01K"};
constexpr const char *kInterims[] = {"HTTP/1.1 100 Continue\r\n\r\n",
                                     "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"};
constexpr const char *kResponseHeaders[] = {
    "Content-Type: text/plain",
    "Server: up",
    "Set-Cookie: a=b",
    "Connection: close",
    "Connection: keep-alive",
    "Keep-Alive: timeout=5",
    "X-Riskgate-Identity: forged",
    "Upgrade: h2c",
    "X-Fold: a\r\n b",
    "X-Ctl: a\x01z",
    "X-Cr: a\rz",
    "Trailer: X-T",
    "Cache-Control: no-store",
    ": v",
    "X A: b",
};

}  // namespace

bool HttpGenerator::chance(unsigned percent)
{
  return below(100) < percent;
}

std::size_t HttpGenerator::below(std::size_t n)
{
  return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
}

std::string HttpGenerator::line_end()
{
  if (!chance(3))
    return "\r\n";
  constexpr const char *kOdd[] = {"\n", "\r", "\r\r\n", "\n\r"};
  return pick(kOdd);
}

std::string HttpGenerator::chunked_body()
{
  std::string body;
  const std::size_t chunks = below(4);
  for (std::size_t i = 0; i < chunks; ++i) {
    const std::size_t size = 1 + below(12);
    body += fmt::format(fmt::runtime(pick(kChunkSizes)), size) + line_end();
    std::string data(size, 'a');
    for (char &c : data) c = static_cast<char>('a' + below(26));
    if (chance(5))
      data.pop_back();  // shorter than announced
    body += data + line_end();
  }
  body += (chance(90) ? std::string("0") : fmt::format(fmt::runtime(pick(kChunkSizes)), 0)) + line_end();
  if (chance(10))
    body += "X-T: 1" + line_end();
  if (chance(95))
    body += line_end();
  return body;
}

std::string HttpGenerator::framing(std::vector<std::string> &headers)
{
  // None, a length, chunked, or both, each spelled any way, sometimes twice.
  const std::size_t kind = below(10);  // 0-2 none, 3-5 length, 6-8 chunked, 9 both
  const bool length = kind >= 3 && kind <= 5;
  const bool chunked = kind >= 6;
  std::string body;
  if (chunked) {
    body = chunked_body();
    const std::size_t encodings = chance(90) ? 1 : 2;
    for (std::size_t i = 0; i < encodings; ++i)
      headers.push_back(
          fmt::format("{}: {}", pick(kEncodingNames), i == 0 && encodings == 2 ? "gzip" : pick(kEncodings)));
  }
  if (length || kind == 9) {
    const std::size_t size = below(16);
    if (length)
      body.assign(size + (chance(10) ? below(4) : 0), 'x');  // sometimes more bytes than announced
    const std::size_t lengths = chance(92) ? 1 : 2;
    for (std::size_t i = 0; i < lengths; ++i) {
      const std::size_t announced = chance(85) ? size : size + below(5);
      headers.push_back(fmt::format("{}: {}", pick(kLengthNames),
                                    fmt::format(fmt::runtime(pick(kLengthSpellings)), announced, announced)));
    }
  }
  return body;
}

std::string HttpGenerator::message(std::string start_line, std::vector<std::string> headers,
                                   const std::string &body)
{
  for (std::size_t i = headers.size(); i > 1; --i) std::swap(headers[i - 1], headers[below(i)]);
  std::string raw = std::move(start_line) + line_end();
  for (const auto &header : headers) raw += header + line_end();
  return raw + line_end() + body;
}

std::string HttpGenerator::request(bool pipelining)
{
  std::string line = pick(kMethods);
  line += chance(97) ? " " : "  ";
  line += pick(kTargets);
  line += " ";
  line += pick(kVersions);
  std::vector<std::string> headers;
  const std::size_t hosts = chance(85) ? 1 : below(3);
  for (std::size_t i = 0; i < hosts; ++i) headers.push_back(i == 0 ? "Host: svc" : "Host: other");
  const std::size_t extra = below(4);
  for (std::size_t i = 0; i < extra; ++i) headers.emplace_back(pick(kHeaders));
  std::string body = framing(headers);
  if (body.empty() && chance(5))
    body = "stray";  // bytes after a bodiless request: the next request's start, to a parser
  std::string raw = message(std::move(line), std::move(headers), body);
  if (pipelining && chance(15))
    raw += request(false);
  return raw;
}

std::string HttpGenerator::request()
{
  return request(true);
}

std::string HttpGenerator::response()
{
  std::string raw = chance(10) ? pick(kInterims) : "";
  std::vector<std::string> headers;
  const std::size_t extra = below(4);
  for (std::size_t i = 0; i < extra; ++i) headers.emplace_back(pick(kResponseHeaders));
  std::string body = framing(headers);
  if (body.empty() && chance(60))
    body = "read until the upstream closes";  // no framing: the body ends with the connection
  return raw + message(pick(kStatusLines), std::move(headers), body);
}

GeneratedRun generated_run(std::uint64_t seed, int cases)
{
  if (const char *value = std::getenv("RISKGATE_HTTP_SEED"))
    seed = std::stoull(value);
  if (const char *value = std::getenv("RISKGATE_HTTP_CASES"))
    cases = std::stoi(value);
  return {seed, cases};
}

std::string escaped(const std::string &raw)
{
  std::string out;
  for (const char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\r')
      out += "\\r";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\\')
      out += "\\\\";
    else if (byte < 0x20 || byte >= 0x7f)
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return out;
}

}  // namespace riskgate::test
