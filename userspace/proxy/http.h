// HTTP/1.1 codec over llhttp (the Node.js parser), every leniency off. The parser hands over the
// message head once complete and streams the body, decoded, into a sink in the framing the proxy
// chose for the other side: the proxy re-emits framing itself and never copies a client's
// Content-Length / Transfer-Encoding bytes to the upstream (see docs/proxy.md).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <riskgate/proxy/proxy.h>
#include <riskgate/proxy/request.h>

namespace riskgate::proxy {

// A status and a short machine-readable reason, for the JSON error body.
struct HttpError {
  int status = 0;
  std::string reason;
};

// How a body is written to the other side.
enum class Framing : std::uint8_t { none, length, chunked, close_delimited };

class HttpParser;

// Whether a string's characters live on the heap (not in the object itself): what a parked buffer
// would keep allocated.
inline bool holds_heap(const std::string &s)
{
  return s.capacity() > std::string().capacity();
}

// Receives the complete head of each message, synchronously inside HttpParser::feed().
class HeadHandler {
 public:
  virtual ~HeadHandler() = default;
  // Return 0 to go on (the handler has called set_body_sink if the body is wanted), 1 to treat the
  // message as bodiless (a response to HEAD), -1 after fail() to stop with an error.
  virtual int on_head(HttpParser &parser) = 0;
};

class HttpParser {
 public:
  enum class Status {
    more,   // every byte consumed, message not complete
    done,   // a message ended at `consumed`; call next_message() before feeding what follows
    error,  // error() says why; the connection must close
  };
  struct Step {
    Status status;
    std::size_t consumed;
  };

  HttpParser(llhttp_type_t type, const HttpLimits &limits, HeadHandler &handler);
  HttpParser(const HttpParser &) = delete;
  HttpParser &operator=(const HttpParser &) = delete;

  // Where a head is kept: its target and header bytes, and where each field lies in them.
  struct Span {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
  };
  struct HeadStorage {
    std::string bytes;
    std::vector<std::pair<Span, Span>> fields;
    bool allocated() const { return holds_heap(bytes) || fields.capacity() > 0; }
  };
  // Between messages a connection may lend its head storage out (to its worker's spares, so an idle
  // connection holds none) and adopt another before the next message's first byte. Nothing read from
  // the last head may be used after it is lent.
  HeadStorage lend_storage() { return std::exchange(head_, HeadStorage{}); }
  void adopt_storage(HeadStorage &&storage)
  {
    head_ = std::move(storage);
    head_.bytes.clear();
    head_.fields.clear();
  }
  bool holds_storage() const { return head_.allocated(); }

  Step feed(const char *data, std::size_t len);
  // The peer closed: ends a close-delimited body (done) or is an error mid-message.
  Step finish();
  void next_message();
  // Back to the start state, forgetting any partial message (a pooled connection's next exchange).
  void reset();
  bool in_message() const { return in_message_; }
  bool head_complete() const { return head_complete_; }

  // ---- the current head (valid from on_head until the next message) ----
  std::string_view method() const
  {
    return head_complete_ && parser_.type == HTTP_REQUEST
               ? llhttp_method_name(static_cast<llhttp_method_t>(parser_.method))
               : std::string_view{};
  }
  std::string_view target() const { return field(target_); }
  int status_code() const { return llhttp_get_status_code(const_cast<llhttp_t *>(&parser_)); }
  unsigned http_major() const { return parser_.http_major; }
  unsigned http_minor() const { return parser_.http_minor; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  bool has_content_length() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  std::uint64_t content_length() const { return content_length_; }
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool needs_eof() const { return llhttp_message_needs_eof(&parser_) != 0; }
  std::size_t header_count() const { return head_.fields.size(); }
  std::string_view header_name(std::size_t i) const { return field(head_.fields[i].first); }
  std::string_view header_value(std::size_t i) const { return field(head_.fields[i].second); }
  // First header with this name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
  // Body bytes seen so far (decoded).
  std::uint64_t body_bytes() const { return body_bytes_; }

  // Body of the current message goes into `sink` in `framing` (nullptr: discarded). Set in on_head.
  void set_body_sink(std::string *sink, Framing framing)
  {
    sink_ = sink;
    framing_ = framing;
  }
  void fail(int status, std::string reason);
  const HttpError &error() const { return error_; }
  // A request's target rewritten in the head storage into its canonical form (path.h), so every
  // later reader of target() sees that; false after fail(400) when it cannot be normalised safely.
  bool make_target_canonical(const PathOptions &options);

 private:
  std::string_view field(Span span) const { return {head_.bytes.data() + span.offset, span.length}; }
  bool append_head(const char *at, std::size_t length, Span &span);
  Step step(llhttp_errno_t rc, const char *data, std::size_t len);

  static int cb_message_begin(llhttp_t *p);
  static int cb_url(llhttp_t *p, const char *at, std::size_t length);
  static int cb_header_field(llhttp_t *p, const char *at, std::size_t length);
  static int cb_header_value(llhttp_t *p, const char *at, std::size_t length);
  static int cb_header_value_complete(llhttp_t *p);
  static int cb_headers_complete(llhttp_t *p);
  static int cb_body(llhttp_t *p, const char *at, std::size_t length);
  static int cb_message_complete(llhttp_t *p);

  // llhttp 8 (Debian's) takes a bare LF for the CRLF that ends the request line, the head or a
  // chunked body's trailer section; Node's llhttp 9 refuses all three, and a proxy must never be
  // laxer than the servers behind it. A request's head is scanned before llhttp reads it, so the
  // refusal comes before the hook or the upstream sees anything.
  class HeadLineEnds {
   public:
    // Offset of the first LF in data[0, len) that does not follow a CR, or npos; scanning stops
    // at the blank line that ends the head (leading blank lines before the request line are skipped).
    std::size_t scan(const char *data, std::size_t len);
    void restart() { *this = HeadLineEnds{}; }

   private:
    std::uint32_t line_ = 0;  // bytes of the current line so far, its CR included
    char previous_ = 0;       // the last byte scanned, from an earlier feed
    bool started_ = false;    // past the blank lines allowed before the request line
    bool done_ = false;       // the head's blank line was seen
  };

  // Every idle connection holds one (docs/proxy.md): the small fields are kept together at the end.
  llhttp_t parser_{};
  const HttpLimits &limits_;
  HeadHandler &handler_;
  HeadStorage head_;  // of the current message, reused across messages while not lent out
  Span target_;
  const char *feed_end_ = nullptr;
  std::uint64_t content_length_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::string *sink_ = nullptr;
  HttpError error_;
  HeadLineEnds head_line_ends_;
  Framing framing_ = Framing::none;
  bool in_value_ = false;
  bool value_started_ = false;  // the current field has value bytes
  bool value_open_ = false;     // ...and its last piece ran to the end of the input (more may follow)
  bool in_message_ = false;
  bool head_complete_ = false;
  char last_fed_[2] = {};  // the last two bytes fed: a chunked body's final CRLF may straddle feeds
};

// ---- request policy and re-emission ----

bool iequals(std::string_view a, std::string_view b);

// Checks what llhttp leaves to the application: Host (exactly one on HTTP/1.1), duplicate or
// conflicting framing headers, Transfer-Encoding other than "chunked", control bytes in values,
// obs-fold, the request-target form, unsupported upgrades. Returns the error, status 0 when fine.
HttpError validate_request(const HttpParser &request);

// Whether a header is dropped on the way through: hop-by-hop (RFC 9110 7.6.1), framing (re-emitted),
// riskgate's reserved prefix, or named in the message's Connection header.
bool is_hop_by_hop(std::string_view name, std::string_view connection_header);

// The upstream request head: request line in HTTP/1.1, end-to-end headers, hook-added header lines
// (HookVerdict::headers, already "name: value\r\n"), framing chosen from the client's
// (Content-Length or chunked). An HTTP/1.0 request without Host gets `default_host` (the upstream's
// address), since HTTP/1.1 requires one.
void emit_request_head(const HttpParser &request, std::string_view extra_headers,
                       std::string_view default_host, std::string &out);

// The client response head, with the framing the proxy will write (`framing`); `close` adds
// Connection: close, `keep_alive_10` Connection: keep-alive for an HTTP/1.0 client.
void emit_response_head(const HttpParser &response, Framing framing, bool close, bool keep_alive_10,
                        std::string &out);

// A complete response generated by the proxy: JSON body {"status","error","reason","decision_id"},
// with the hook's header lines (HookVerdict::headers).
void emit_error_response(int status, std::string_view reason, std::uint64_t decision_id,
                         std::string_view extra_headers, bool close, std::string &out);

std::string_view status_text(int status);

}  // namespace riskgate::proxy
