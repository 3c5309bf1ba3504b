// The client side of the worker: accept, receive, request heads and the hook, the proxy's own
// answers, the end of an exchange, keep-alive parking, backpressure toward the client.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include <riskgate/common/net.h>
#include "worker.h"

namespace riskgate::proxy {

namespace {

constexpr std::size_t kMaxPending = 64 << 10;  // pipelined bytes held while an exchange is in flight
constexpr std::uint32_t kLingerMs = 1000;
// Spares kept per worker, of each kind: enough for every connection active at once to reuse, not a
// hoard (a send buffer a large body grew is freed).
constexpr std::size_t kMaxSpares = 1024;
constexpr std::size_t kMaxSpareBytes = 16 << 10;
constexpr int kSoOriginalDst = 80;  // linux/netfilter_ipv4.h, answered by the datapath's getsockopt program

bool same_address(const sockaddr_storage &a, const sockaddr_storage &b)
{
  if (a.ss_family != b.ss_family)
    return false;
  if (a.ss_family == AF_INET) {
    const auto &x = reinterpret_cast<const sockaddr_in &>(a);
    const auto &y = reinterpret_cast<const sockaddr_in &>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto &x = reinterpret_cast<const sockaddr_in6 &>(a);
  const auto &y = reinterpret_cast<const sockaddr_in6 &>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
}

sockaddr_storage to_storage(const sockaddr_in6 &a)
{
  sockaddr_storage out{};
  std::memcpy(&out, &a, sizeof a);
  return out;
}

// The request's part of the hook's view (acquire_exchange filled in the connection's): its
// end-to-end headers, and everything pointing into the parser's head.
void describe_request(const HttpParser &p, Exchange &ex)
{
  const auto connection = p.header("connection").value_or(std::string_view{});
  for (std::size_t i = 0; i < p.header_count(); ++i)
    if (!is_hop_by_hop(p.header_name(i), connection))
      ex.headers.push_back(HeaderView{p.header_name(i), p.header_value(i)});
  RequestView &v = ex.view;
  v.method = p.method();
  v.target = p.target();
  v.path = v.target.substr(0, v.target.find('?'));
  v.host = p.header("host").value_or(std::string_view{});
  v.http_minor = static_cast<std::uint8_t>(p.http_minor());
  v.headers = ex.headers;
  v.chunked = p.chunked();
  v.content_length = p.has_content_length() ? std::optional<std::uint64_t>(p.content_length()) : std::nullopt;
  v.received_ns = monotonic_ns();
}

// The idempotent methods (RFC 9110 9.2.2) whose requests may be sent once more.
bool idempotent(std::string_view method)
{
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" || method == "DELETE";
}

}  // namespace

int ClientConn::on_head(HttpParser &)
{
  return worker.on_request_head(*this);
}

// ---------------------------------------------------------------- accept

void Worker::arm_accept(ListenerSocket &l)
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, tag(&l, op_accept));
  l.armed = true;
}

void Worker::on_accept(ListenerSocket &l, const io_uring_cqe *cqe)
{
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
    l.armed = false;
    if (stopping_ && l.fd >= 0) {
      close_listener(l);
    } else if (cqe->res >= 0) {
      arm_accept(l);  // errors (EMFILE...) re-arm on the next tick instead of spinning
    }
  }
  if (cqe->res < 0)
    return;
  const int fd = cqe->res;
  if (stopping_) {
    ::close(fd);
    return;
  }
  if (clients_.size() >= config_.max_connections_per_worker) {
    std::string answer;
    emit_error_response(503, "too many connections", 0, {}, true, answer);
    [[maybe_unused]] const auto sent = ::send(fd, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::close(fd);
    return;
  }
  open_client(l, fd);
}

void Worker::open_client(ListenerSocket &l, int fd)
{
  auto *c = new ClientConn(*this, config_.limits);
  c->ep.fd = fd;
  c->ep.ready = true;
  c->listener = &l;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  socklen_t len = sizeof c->peer_address;
  getpeername(fd, reinterpret_cast<sockaddr *>(&c->peer_address), &len);
  len = sizeof c->local_address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&c->local_address), &len);
  len = sizeof c->cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c->cookie, &len) != 0)
    c->cookie = 0;
  c->connection_id = (static_cast<std::uint64_t>(index_) << 48) | ++next_connection_;
  c->pool = l.config->transparent ? original_destination(*c) : l.pool;
  c->deadline_ms = now_ms_ + config_.timeouts.header_ms;
  c->slot = clients_.size();
  clients_.push_back(c);
  all_clients_.insert(c);
  arm_recv(c->ep, tag(c, op_client_recv));
}

// Transparent mode: where the client meant to connect, as the datapath's getsockopt program tells.
// Null when it does not, or names the listener itself: the proxy never guesses.
UpstreamPool *Worker::original_destination(const ClientConn &c)
{
  sockaddr_storage original{};
  socklen_t len = sizeof original;
  const int level = c.local_address.sin6_family == AF_INET6 ? SOL_IPV6 : SOL_IP;
  if (getsockopt(c.ep.fd, level, kSoOriginalDst, &original, &len) != 0 || original.ss_family == AF_UNSPEC ||
      same_address(original, to_storage(c.local_address)))
    return nullptr;
  return pool_for(original, net::endpoint_string(original));
}

// ---------------------------------------------------------------- receive

void Worker::on_client_recv(ClientConn &c, const io_uring_cqe *cqe)
{
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  const int res = cqe->res;
  if (take_recv(c.ep, cqe, [&](const char *data, std::size_t len) { client_bytes(c, data, len); })) {
    // The peer closed (or reset). After a half-close, what was already asked is still answered.
    if (c.ep.closed)
      return;
    if (res == 0 && !c.lingering) {
      c.peer_eof = true;
      settle_eof(c);
    } else {
      close_client(c);
    }
    return;
  }
  if (!more && !c.ep.closed && !c.ep.recv_paused && (c.phase != ClientConn::Phase::closing || c.lingering))
    arm_recv(c.ep, tag(&c, op_client_recv));
}

void Worker::client_bytes(ClientConn &c, const char *data, std::size_t len)
{
  if (c.phase == ClientConn::Phase::closing)
    return;  // lingering: what follows the last answered request is discarded
  if (c.phase == ClientConn::Phase::request && c.parser.head_complete())
    c.deadline_ms = now_ms_ + config_.timeouts.body_ms;
  if (c.pending.empty()) {
    const std::size_t used = parse_client(c, data, len);
    if (used < len && !c.ep.closed && c.phase != ClientConn::Phase::closing)
      c.pending.append(data + used, len - used);
  } else {
    c.pending.append(data, len);
    drain_pending(c);
  }
  if (c.ep.closed)
    return;
  if (c.pending.size() > kMaxPending)
    pause_recv(c.ep, tag(&c, op_client_recv));
  if (c.up != nullptr) {
    flush(c.up->ep, tag(c.up, op_up_send));
    if (c.up->ep.unsent() > kHighWater)
      pause_recv(c.ep, tag(&c, op_client_recv));
  }
  flush(c.ep, tag(&c, op_client_send));
}

std::size_t Worker::parse_client(ClientConn &c, const char *data, std::size_t len)
{
  std::size_t off = 0;
  while (off < len && !c.ep.closed) {
    if (c.phase == ClientConn::Phase::waiting || c.phase == ClientConn::Phase::closing)
      break;
    if (c.phase == ClientConn::Phase::idle)
      start_request(c);
    const auto step = c.parser.feed(data + off, len - off);
    off += step.consumed;
    if (step.status == HttpParser::Status::error) {
      request_failed(c);
      return len;
    }
    if (step.status == HttpParser::Status::more)
      break;
    request_complete(c);
  }
  return off;
}

void Worker::drain_pending(ClientConn &c)
{
  if (c.pending.empty()) {
    settle_eof(c);
    return;
  }
  const std::size_t used = parse_client(c, c.pending.data(), c.pending.size());
  if (c.ep.closed || c.phase == ClientConn::Phase::closing)
    c.pending.clear();
  else
    c.pending.erase(0, used);
  if (c.pending.size() <= kMaxPending && c.phase != ClientConn::Phase::closing)
    resume_recv(c.ep, tag(&c, op_client_recv));
  settle_eof(c);
}

// The peer sent its FIN: once every request it completed is answered, close. A request it left
// incomplete will never complete: it is refused like any malformed one (400 "connection closed
// mid-message", after the answers before it; its upstream exchange, if it had begun, is dropped).
void Worker::settle_eof(ClientConn &c)
{
  if (!c.peer_eof || c.ep.closed)
    return;
  if (c.phase == ClientConn::Phase::request && c.parser.finish().status == HttpParser::Status::error) {
    request_failed(c);
    return;
  }
  // Idle, or nothing since the last answer but the blank lines allowed before a request.
  if (c.phase == ClientConn::Phase::idle || c.phase == ClientConn::Phase::request) {
    c.close_after = true;
    c.phase = ClientConn::Phase::closing;
    after_client_flush(c);
  }
}

// The first byte of a request: the last exchange's state is cleared here, not when its head is
// complete, so that a request refused before its head is judged as itself (an invalid request
// pipelined behind an answered one gets its 400 after that answer).
void Worker::start_request(ClientConn &c)
{
  unpark_head(c);
  c.phase = ClientConn::Phase::request;
  c.deadline_ms = now_ms_ + config_.timeouts.header_ms;
  c.hooked = c.local = c.abort_parse = c.request_done = c.response_started = false;
  c.status = 0;
  c.response_body_bytes = 0;
}

// ---------------------------------------------------------------- the request head

// The head is complete (the parser calls this): check it, show it to the hook, act on the verdict.
// Returns what HeadHandler::on_head does.
int Worker::on_request_head(ClientConn &c)
{
  unpark_buffers(c.ep);
  if (!accept_head(c))
    return -1;
  Exchange &ex = acquire_exchange(c);
  describe_request(c.parser, ex);
  ask_hook(ex);
  c.hooked = true;
  return act_on_verdict(c, ex);
}

// What llhttp leaves to the application (validate_request) and the canonical path (the only one the
// hook and the upstream see); a valid head also says whether the connection outlives this exchange.
bool Worker::accept_head(ClientConn &c)
{
  HttpParser &p = c.parser;
  if (const auto error = validate_request(p); error.status != 0) {
    p.fail(error.status, error.reason);
    return false;
  }
  if (!p.make_target_canonical(config_.paths))
    return false;
  if (!p.keep_alive() || stopping_)
    c.close_after = true;
  return true;
}

// The exchange with the connection's part of the view filled in; the verdict arrives reset.
Exchange &Worker::acquire_exchange(ClientConn &c)
{
  if (c.ex == nullptr) {
    if (spare_exchanges_.empty()) {
      c.ex = new Exchange;
    } else {
      c.ex = spare_exchanges_.back().release();
      spare_exchanges_.pop_back();
    }
  }
  Exchange &ex = *c.ex;
  ex.headers.clear();
  ex.verdict.reset();
  RequestView &v = ex.view;
  v.peer = to_storage(c.peer_address);
  v.local = to_storage(c.local_address);
  v.socket_cookie = c.cookie;
  v.connection_id = c.connection_id;
  v.service = c.listener->config->service;
  v.worker = index_;
  v.destination = c.pool != nullptr ? c.pool->address() : sockaddr_storage{};
  v.upstream_name = c.pool != nullptr ? std::string_view(c.pool->name()) : std::string_view{};
  v.upstream = c.pool != nullptr ? &c.pool->health() : nullptr;
  return ex;
}

// No exception crosses the ring loop: a hook that throws gets its request answered 500.
void Worker::ask_hook(Exchange &ex)
{
  try {
    hook_.on_request(ex.view, ex.verdict);
  } catch (const std::exception &e) {
    ex.verdict.reset();
    ex.verdict.kind = HookVerdict::Kind::respond;
    ex.verdict.status = 500;
    ex.verdict.reason = "risk hook failed";
    fmt::print(stderr, "riskgate: worker {}: request hook threw: {}\n", index_, e.what());
  }
}

int Worker::act_on_verdict(ClientConn &c, Exchange &ex)
{
  HookVerdict &verdict = ex.verdict;
  const bool has_body = c.parser.chunked() || c.parser.content_length() > 0;
  if (verdict.kind == HookVerdict::Kind::close) {
    c.abort_parse = true;
    return -1;
  }
  if (verdict.kind == HookVerdict::Kind::forward && c.pool == nullptr) {
    verdict.kind = HookVerdict::Kind::respond;
    verdict.status = 502;
    verdict.reason = "original destination unknown";
    verdict.headers.clear();
  }
  if (verdict.kind == HookVerdict::Kind::respond)
    return answer_before_body(c, verdict.status, verdict.reason, verdict.close_after, has_body);
  return forward_request(c, ex, has_body);
}

// The proxy answers as soon as the head is in. The body is not read: answering before it arrives
// means the connection cannot be reused, and parsing stops.
int Worker::answer_before_body(ClientConn &c, int status, std::string_view reason, bool close, bool has_body)
{
  respond_local(c, status, reason, has_body || close);
  c.parser.set_body_sink(nullptr, Framing::none);
  c.abort_parse = has_body;
  return has_body ? -1 : 0;
}

int Worker::forward_request(ClientConn &c, Exchange &ex, bool has_body)
{
  UpConn *u = acquire_upstream(*c.pool);
  if (u == nullptr) {
    ex.verdict.headers.clear();  // meant for the upstream (x-riskgate-identity, ...), not the client
    return answer_before_body(c, 502, "upstream connect: no socket", false, has_body);
  }
  u->client = &c;
  c.up = u;
  c.upstream_start_ns = ex.view.received_ns;
  write_upstream_head(c, *u, ex, has_body);
  if (has_body)
    stream_body(c, *u);
  return 0;
}

// The new request head, queued for the upstream; kept for a second try when it goes out on a
// reused connection and may be sent twice.
void Worker::write_upstream_head(const ClientConn &c, UpConn &u, Exchange &ex, bool has_body)
{
  const std::size_t head_start = u.ep.queued.size();
  emit_request_head(c.parser, ex.verdict.headers, c.pool->host(), u.ep.queued);
  if (u.reused && !has_body && idempotent(c.parser.method()))
    ex.replay.assign(u.ep.queued, head_start);
  else
    ex.replay.clear();
}

// The body goes to the upstream as it arrives, re-framed. Expect was stripped (hop-by-hop here):
// the proxy itself invites the body once the hook allowed the request.
void Worker::stream_body(ClientConn &c, UpConn &u)
{
  HttpParser &p = c.parser;
  if (const auto expect = p.header("expect");
      expect && iequals(*expect, "100-continue") && p.http_minor() >= 1)
    c.ep.queued.append("HTTP/1.1 100 Continue\r\n\r\n");
  p.set_body_sink(&u.ep.queued, p.chunked() ? Framing::chunked : Framing::length);
  c.deadline_ms = now_ms_ + config_.timeouts.body_ms;
}

// ---------------------------------------------------------------- the end of an exchange

void Worker::request_failed(ClientConn &c)
{
  if (c.abort_parse) {
    // Answered (or told to close) by the hook before the body: nothing more is read.
    if (c.ex != nullptr && c.ex->verdict.kind == HookVerdict::Kind::close) {
      c.status = 0;
      finish_exchange(c);
      close_client(c);
      return;
    }
    finish_exchange(c);
    return;
  }
  const HttpError &error = c.parser.error();
  if (c.response_started && !c.local) {
    // The upstream already answered part of this exchange: nothing sensible can follow.
    finish_exchange(c);
    close_client(c);
    return;
  }
  if (c.up != nullptr)
    close_up(*c.up);
  respond_error(c, error.status, error.reason, true);
  finish_exchange(c);
}

void Worker::request_complete(ClientConn &c)
{
  c.request_done = true;
  if (c.local) {
    finish_exchange(c);
    return;
  }
  c.phase = ClientConn::Phase::waiting;
  c.deadline_ms = now_ms_ + config_.timeouts.upstream_response_ms;
  if (c.up == nullptr)  // the upstream already answered while the body was arriving
    finish_exchange(c);
}

// An answer of the proxy's own, with the hook's header lines (a respond verdict's).
void Worker::respond_local(ClientConn &c, int status, std::string_view reason, bool close)
{
  if (close || stopping_)
    c.close_after = true;
  c.local = true;
  c.status = status;
  c.response_started = true;
  const auto headers = c.ex != nullptr ? std::string_view(c.ex->verdict.headers) : std::string_view();
  emit_error_response(status, reason, c.ex != nullptr ? c.ex->verdict.decision_id : 0, headers, c.close_after,
                      c.ep.queued);
}

// An error answer in place of the exchange: a forward verdict's headers were meant for the upstream.
void Worker::respond_error(ClientConn &c, int status, std::string_view reason, bool close)
{
  if (c.ex != nullptr)
    c.ex->verdict.headers.clear();
  respond_local(c, status, reason, close);
}

void Worker::finish_exchange(ClientConn &c)
{
  if (c.hooked && c.ex != nullptr) {
    ExchangeResult result;
    result.decision_id = c.ex->verdict.decision_id;
    result.status = c.status;
    result.upstream_ns = c.local || c.upstream_start_ns == 0 ? 0 : monotonic_ns() - c.upstream_start_ns;
    result.request_body_bytes = c.parser.body_bytes();
    result.response_body_bytes = c.response_body_bytes;
    hook_.on_complete(c.ex->view, result);
  }
  c.hooked = false;
  c.ep.retractable_from = std::string::npos;
  release_exchange(c);
  c.upstream_start_ns = 0;
  c.parser.set_body_sink(nullptr, Framing::none);
  if (c.close_after) {
    c.phase = ClientConn::Phase::closing;
    c.pending.clear();
    c.deadline_ms = now_ms_ + config_.timeouts.body_ms;
    after_client_flush(c);
    return;
  }
  c.phase = ClientConn::Phase::idle;
  c.local = false;
  c.parser.next_message();
  c.deadline_ms = now_ms_ + config_.timeouts.idle_ms;
  park_idle(c);
}

void Worker::release_exchange(ClientConn &c)
{
  if (c.ex == nullptr)
    return;
  spare_exchanges_.emplace_back(c.ex);
  c.ex = nullptr;
}

// After an exchange ended: send its answer, then parse the requests held back behind it (which
// may start the next exchange, whose upstream request goes out too).
void Worker::continue_client(ClientConn &c)
{
  flush(c.ep, tag(&c, op_client_send));
  if (c.phase == ClientConn::Phase::idle)
    drain_pending(c);
  if (c.ep.closed)
    return;
  flush(c.ep, tag(&c, op_client_send));
  if (c.up != nullptr)
    flush(c.up->ep, tag(c.up, op_up_send));
}

// ---------------------------------------------------------------- keep-alive parking

// An idle connection holds no buffers (HAProxy's rule): between exchanges its send strings (once
// nothing is left to send) and its parser's head storage go back to the worker's spares, and are
// taken again when the next request starts, so keep-alive reuse allocates nothing and 10k idle
// connections cost only their state.
void Worker::park_idle(ClientConn &c)
{
  if (c.phase != ClientConn::Phase::idle || !c.pending.empty())
    return;
  if (c.parser.holds_storage()) {
    auto head = c.parser.lend_storage();
    if (spare_heads_.size() < kMaxSpares && head.bytes.capacity() <= kMaxSpareBytes)
      spare_heads_.push_back(std::move(head));
  }
  if (holds_heap(c.pending))
    c.pending = std::string();  // pipelined bytes were held: rare, not kept
  Endpoint &ep = c.ep;
  if (ep.sending || ep.unsent() > 0)
    return;
  for (std::string *buffer : {&ep.out, &ep.queued}) {
    if (!holds_heap(*buffer))
      continue;
    if (spare_buffers_.size() < kMaxSpares && buffer->capacity() <= kMaxSpareBytes) {
      buffer->clear();
      spare_buffers_.push_back(std::move(*buffer));
    }
    *buffer = std::string();
  }
  ep.out_off = 0;
}

void Worker::unpark_head(ClientConn &c)
{
  if (c.parser.holds_storage() || spare_heads_.empty())
    return;
  c.parser.adopt_storage(std::move(spare_heads_.back()));
  spare_heads_.pop_back();
}

void Worker::unpark_buffers(Endpoint &ep)
{
  for (std::string *buffer : {&ep.out, &ep.queued}) {
    if (holds_heap(*buffer) || spare_buffers_.empty() || !buffer->empty())
      continue;
    *buffer = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  }
}

// ---------------------------------------------------------------- send, timeout, close

void Worker::on_client_send(ClientConn &c, int res)
{
  if (!take_send(c.ep, res)) {
    close_client(c);  // nothing to do when it is closed already
    return;
  }
  park_idle(c);
  if (c.phase == ClientConn::Phase::waiting || c.phase == ClientConn::Phase::closing)
    c.deadline_ms = std::max(c.deadline_ms, now_ms_ + config_.timeouts.body_ms);
  flush(c.ep, tag(&c, op_client_send));
  if (c.up != nullptr && c.ep.unsent() < kLowWater)
    resume_recv(c.up->ep, tag(c.up, op_up_recv));
  if (c.phase == ClientConn::Phase::closing)
    after_client_flush(c);
}

// Once the last answer is on the wire: half-close and linger until the peer closes (or a second
// passes), so that a client still sending does not turn our FIN into a reset that eats the answer.
void Worker::after_client_flush(ClientConn &c)
{
  if (c.ep.closed || c.phase != ClientConn::Phase::closing || c.lingering)
    return;
  if (c.ep.unsent() > 0 || c.ep.sending) {
    flush(c.ep, tag(&c, op_client_send));
    return;
  }
  ::shutdown(c.ep.fd, SHUT_WR);
  c.lingering = true;  // the peer's FIN (res 0) or the linger deadline closes it
  c.deadline_ms = now_ms_ + kLingerMs;
  c.ep.recv_paused = false;
  if (!c.ep.recv_armed)
    arm_recv(c.ep, tag(&c, op_client_recv));
}

void Worker::client_timeout(ClientConn &c)
{
  using Phase = ClientConn::Phase;
  if (c.phase == Phase::idle || c.phase == Phase::closing) {
    close_client(c);
    return;
  }
  if (c.phase == Phase::waiting && c.up != nullptr && !c.response_started) {
    upstream_failed(*c.up, 504, "upstream response timeout");
    return;
  }
  if (c.phase == Phase::request && !c.response_started) {
    if (c.up != nullptr)
      close_up(*c.up);
    respond_error(c, 408, c.parser.head_complete() ? "request body timeout" : "request header timeout", true);
    finish_exchange(c);
    flush(c.ep, tag(&c, op_client_send));
    return;
  }
  finish_exchange(c);
  close_client(c);
}

void Worker::close_client(ClientConn &c)
{
  if (c.ep.closed)
    return;
  c.ep.closed = true;
  if (c.hooked) {
    c.close_after = true;
    finish_exchange(c);
  }
  if (c.up != nullptr)
    close_up(*c.up);
  ::shutdown(c.ep.fd, SHUT_RDWR);  // ends the multishot receive (res 0) and any pending send
  if (c.ep.recv_armed) {
    io_uring_sqe *sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, tag(&c, op_client_recv), 0);
    io_uring_sqe_set_data64(sqe, op_ignore);
  }
  ClientConn *last = clients_.back();
  clients_[c.slot] = last;
  last->slot = c.slot;
  clients_.pop_back();
  dead_clients_.push_back(&c);
}

}  // namespace riskgate::proxy
