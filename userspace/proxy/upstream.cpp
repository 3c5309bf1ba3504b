// The upstream side of the worker: its destinations, connect, send, and the relay of each response
// to its client.
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <fmt/format.h>

#include <riskgate/common/errors.h>
#include "worker.h"

namespace riskgate::proxy {

int UpConn::on_head(HttpParser &)
{
  return worker.on_response_head(*this);
}

// ---------------------------------------------------------------- destinations

// A destination's pool, made on first use: a named upstream, or a transparent destination named
// "ip:port".
UpstreamPool *Worker::pool_for(const sockaddr_storage &address, const std::string &name)
{
  std::lock_guard lock(pools_mu_);
  if (auto it = pools_by_name_.find(name); it != pools_by_name_.end())
    return it->second;
  auto pool = std::make_unique<UpstreamPool>(name, address, config_.idle_upstream_per_target);
  auto *raw = pool.get();
  pools_by_name_.emplace(name, raw);
  pools_.push_back(std::move(pool));
  return raw;
}

void Worker::collect_health(std::vector<UpstreamHealth> &out) const
{
  std::lock_guard lock(pools_mu_);
  for (const auto &pool : pools_) {
    UpstreamHealth *h = nullptr;
    for (auto &existing : out)
      if (existing.name == pool->name())
        h = &existing;
    if (h == nullptr) {
      out.push_back(UpstreamHealth{pool->name(), 0, 0, 0, true});
      h = &out.back();
    }
    pool->merge_into(*h);
  }
}

// ---------------------------------------------------------------- connect, send

// An idle pooled connection if there is one (unless `fresh`), else a new one, connecting.
UpConn *Worker::acquire_upstream(UpstreamPool &pool, bool fresh)
{
  if (!fresh) {
    while (UpConn *u = pool.take_idle()) {
      if (!u->ep.closed) {
        u->reused = true;
        u->got_bytes = false;
        return u;
      }
    }
  }
  return connect_upstream(pool);
}

// The connect SQE is linked to a timeout: it fails with -ECANCELED when the timeout fires first.
UpConn *Worker::connect_upstream(UpstreamPool &pool)
{
  const int fd = ::socket(pool.address().ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return nullptr;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto *u = new UpConn(*this, config_.limits);
  u->ep.fd = fd;
  u->pool = &pool;
  u->connecting = true;
  all_ups_.insert(u);
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr *>(&pool.address()), pool.address_len());
  io_uring_sqe_set_data64(sqe, tag(u, op_up_connect));
  sqe->flags |= IOSQE_IO_LINK;
  ++u->ep.inflight;
  sqe = ring_.sqe();
  io_uring_prep_link_timeout(sqe, &connect_ts_, 0);
  io_uring_sqe_set_data64(sqe, op_ignore);
  return u;
}

void Worker::on_up_connect(UpConn &u, int res)
{
  --u.ep.inflight;
  u.connecting = false;
  if (u.ep.closed) {
    return;
  }
  if (res < 0) {
    if (res == -ECANCELED)
      upstream_failed(u, 504, "upstream connect timeout");
    else
      upstream_failed(u, 502, fmt::format("upstream connect: {}", errno_text(res)));
    return;
  }
  u.ep.ready = true;
  arm_recv(u.ep, tag(&u, op_up_recv));
  flush(u.ep, tag(&u, op_up_send));
}

void Worker::on_up_send(UpConn &u, int res)
{
  if (!take_send(u.ep, res)) {
    if (!u.ep.closed)
      upstream_failed(u, 502, fmt::format("upstream send: {}", errno_text(res)));
    return;
  }
  flush(u.ep, tag(&u, op_up_send));
  if (u.client != nullptr && u.ep.unsent() < kLowWater)
    resume_recv(u.client->ep, tag(u.client, op_client_recv));
}

// ---------------------------------------------------------------- the response

void Worker::on_up_recv(UpConn &u, const io_uring_cqe *cqe)
{
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  const int res = cqe->res;
  if (take_recv(u.ep, cqe, [&](const char *data, std::size_t len) { up_bytes(u, data, len); })) {
    if (!u.ep.closed) {
      if (u.client == nullptr) {
        close_up(u);  // an idle pooled connection closed by the upstream
      } else {
        const auto step = u.parser.finish();
        if (step.status == HttpParser::Status::done)
          response_complete(u, false);
        else
          upstream_failed(u, 502, res == 0 ? "upstream closed the connection" : "upstream connection reset");
        close_up(u);
      }
    }
    return;
  }
  if (!more && !u.ep.closed && !u.ep.recv_paused)
    arm_recv(u.ep, tag(&u, op_up_recv));
}

void Worker::up_bytes(UpConn &u, const char *data, std::size_t len)
{
  ClientConn *c = u.client;
  if (c == nullptr) {
    close_up(u);  // bytes on an idle connection: the upstream is out of step, do not reuse it
    return;
  }
  u.got_bytes = true;
  c->deadline_ms = now_ms_ + config_.timeouts.upstream_response_ms;
  std::size_t off = 0;
  while (off < len) {
    const auto step = u.parser.feed(data + off, len - off);
    off += step.consumed;
    if (step.status == HttpParser::Status::error) {
      upstream_failed(u, 502, u.parser.error().reason);
      return;
    }
    if (step.status == HttpParser::Status::more)
      break;
    if (u.parser.status_code() < 200) {
      u.parser.next_message();  // interim response (100, 103): not relayed
      continue;
    }
    // Bytes beyond the response: the upstream is out of step, never reuse this connection.
    response_complete(u, off < len);
    return;
  }
  flush(c->ep, tag(c, op_client_send));
  if (c->ep.unsent() > kHighWater)
    pause_recv(u.ep, tag(&u, op_up_recv));
}

int Worker::on_response_head(UpConn &u)
{
  ClientConn *c = u.client;
  if (c == nullptr)
    return -1;
  HttpParser &r = u.parser;
  const int status = r.status_code();
  if (status == 101) {  // never asked for: Upgrade is not forwarded
    r.fail(502, "upstream switched protocols unasked");
    return -1;
  }
  if (status < 200)
    return 0;
  // RFC 9112 6.3: these end at their head whatever their headers say; bytes after it are not a body.
  const bool bodiless = c->parser.method() == "HEAD" || status == 204 || status == 304;
  const bool client_11 = c->parser.http_minor() >= 1;
  Framing framing = Framing::none;
  if (bodiless)
    framing = Framing::none;
  else if (r.has_content_length())
    framing = Framing::length;
  else
    framing = client_11 ? Framing::chunked : Framing::close_delimited;
  if (framing == Framing::close_delimited || !c->request_done || stopping_)
    c->close_after = true;
  c->ep.retractable_from = c->ep.queued.size();
  emit_response_head(r, framing, c->close_after, !c->close_after && !client_11, c->ep.queued);
  r.set_body_sink(framing == Framing::none ? nullptr : &c->ep.queued, framing);
  c->status = status;
  c->response_started = true;
  return bodiless ? 1 : 0;
}

void Worker::response_complete(UpConn &u, bool trailing_bytes)
{
  ClientConn *c = u.client;
  u.pool->record(u.parser.status_code() < 500, monotonic_ns() - c->upstream_start_ns);
  c->response_body_bytes = u.parser.body_bytes();
  release_upstream(u, u.parser.keep_alive() && c->request_done && !trailing_bytes);
  c->up = nullptr;
  if (!c->request_done)
    c->close_after = true;  // answered before the whole body arrived: stop reading it, then close
  finish_exchange(*c);
  continue_client(*c);
}

// ---------------------------------------------------------------- the end of a connection's exchange

void Worker::release_upstream(UpConn &u, bool reusable)
{
  u.client = nullptr;
  if (!reusable || stopping_ || u.ep.unsent() > 0 || !u.pool->park(u)) {
    close_up(u);
    return;
  }
  u.parser.next_message();
}

void Worker::upstream_failed(UpConn &u, int status, std::string_view reason)
{
  ClientConn *c = u.client;
  if (c != nullptr && resend_after_keep_alive_race(u, *c))
    return;
  u.pool->record(false, 0);
  u.client = nullptr;
  close_up(u);
  if (c == nullptr)
    return;
  c->up = nullptr;
  if (c->response_started && c->ep.retractable_from != std::string::npos) {
    // Nothing of the upstream's answer has gone out yet: it is taken back, and the client gets the
    // 502 instead of a connection cut without a word.
    c->ep.queued.resize(c->ep.retractable_from);
    c->response_started = false;
  }
  if (c->response_started) {
    // Part of the answer is on its way: the client gets what there is, then the connection closes.
    // Its framing shows it cut short (the length or the last chunk never comes), except to an
    // HTTP/1.0 client reading an unsized answer until the close, as with any proxy.
    c->close_after = true;
    finish_exchange(*c);
    return;
  }
  respond_error(*c, status, reason, !c->request_done);
  finish_exchange(*c);
  continue_client(*c);
}

// The keep-alive race: the upstream closed a pooled connection as the request arrived, before
// answering anything. Not a failure of the upstream; the request goes once more on a new one.
// False when this is not that case, or no new connection can be had.
bool Worker::resend_after_keep_alive_race(UpConn &u, ClientConn &c)
{
  if (!u.reused || u.got_bytes || c.response_started || !c.request_done || c.ex == nullptr ||
      c.ex->replay.empty())
    return false;
  close_up(u);
  UpConn *fresh = acquire_upstream(*c.pool, true);
  if (fresh == nullptr)
    return false;
  fresh->client = &c;
  c.up = fresh;
  fresh->ep.queued.swap(c.ex->replay);
  c.ex->replay.clear();
  return true;
}

void Worker::close_up(UpConn &u)
{
  if (u.ep.closed)
    return;
  u.ep.closed = true;
  if (u.client != nullptr) {
    u.client->up = nullptr;
    u.client->parser.set_body_sink(nullptr, Framing::none);
    u.client = nullptr;
  }
  u.pool->forget(u);
  ::shutdown(u.ep.fd, SHUT_RDWR);
  if (u.ep.recv_armed || u.connecting) {
    io_uring_sqe *sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, tag(&u, u.connecting ? op_up_connect : op_up_recv), 0);
    io_uring_sqe_set_data64(sqe, op_ignore);
  }
  dead_ups_.push_back(&u);
}

}  // namespace riskgate::proxy
