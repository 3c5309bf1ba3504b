#include "worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <future>

#include <fmt/format.h>

#include <riskgate/common/thread_name.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/net.h>

namespace riskgate::proxy {

namespace {

// user_data = object pointer | operation (objects are at least 8-byte aligned).
enum Op : std::uint64_t {
  op_ignore = 0,  // linked timeouts and cancellations
  op_accept = 1,
  op_client_recv = 2,
  op_client_send = 3,
  op_up_recv = 4,
  op_up_send = 5,
  op_up_connect = 6,
  op_worker = 7,  // tick timer or wake-up eventfd, told apart by the pointer
};

template <class T>
std::uint64_t tag(T *object, Op op)
{
  return reinterpret_cast<std::uint64_t>(object) | op;
}

constexpr std::uint16_t kBufferGroup = 0;
constexpr unsigned kRingEntries = 4096;
constexpr std::uint32_t kTickMs = 100;
constexpr std::size_t kHighWater = 1 << 20;  // unsent bytes that pause the producing side
constexpr std::size_t kLowWater = 256 << 10;
constexpr std::size_t kMaxPending = 64 << 10;  // pipelined bytes held while an exchange is in flight
constexpr std::uint32_t kLingerMs = 1000;
// Spares kept per worker, of each kind: enough for every connection active at once to reuse, not a
// hoard (a send buffer a large body grew is freed).
constexpr std::size_t kMaxSpares = 1024;
constexpr std::size_t kMaxSpareBytes = 16 << 10;
constexpr int kSoOriginalDst = 80;  // linux/netfilter_ipv4.h, answered by the datapath's getsockopt program

std::uint64_t monotonic_ms()
{
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

__kernel_timespec to_timespec(std::uint32_t ms)
{
  __kernel_timespec ts{};
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = static_cast<long long>(ms % 1000) * 1'000'000;
  return ts;
}

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

socklen_t address_len(const sockaddr_storage &a)
{
  return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

int ClientConn::on_head(HttpParser &)
{
  return worker.on_request_head(*this);
}
int UpConn::on_head(HttpParser &)
{
  return worker.on_response_head(*this);
}

Worker::Worker(unsigned index, const ProxyConfig &config, RequestHook &hook)
    : index_(index), config_(config), hook_(hook)
{
  tick_ts_ = to_timespec(kTickMs);
  connect_ts_ = to_timespec(config.timeouts.upstream_connect_ms);
}

Worker::~Worker()
{
  join();
  for (auto *c : all_clients_) {
    ::close(c->ep.fd);
    delete c->ex;
    delete c;
  }
  for (auto *u : all_ups_) {
    ::close(u->ep.fd);
    delete u;
  }
  for (auto &l : listeners_)
    if (l->fd >= 0)
      ::close(l->fd);
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
}

void Worker::add_listener(int fd, const ListenerConfig &config, const sockaddr_storage *upstream,
                          const std::string &upstream_name)
{
  auto l = std::make_unique<ListenerSocket>();
  l->fd = fd;
  l->config = &config;
  if (upstream != nullptr)
    l->target = gateway_target(*upstream, upstream_name);
  listeners_.push_back(std::move(l));
}

Target *Worker::gateway_target(const sockaddr_storage &address, const std::string &name)
{
  std::lock_guard lock(targets_mu_);
  if (auto it = targets_by_name_.find(name); it != targets_by_name_.end())
    return it->second;
  auto t = std::make_unique<Target>();
  t->name = name;
  t->address = address;
  t->address_len = address_len(address);
  t->host = net::endpoint_string(address);
  t->view.name = name;
  auto *raw = t.get();
  targets_by_name_.emplace(name, raw);
  targets_.push_back(std::move(t));
  return raw;
}

Target *Worker::transparent_target(const sockaddr_storage &address)
{
  return gateway_target(address, net::endpoint_string(address));
}

Result<void> Worker::start()
{
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0)
    return make_error(fmt::format("worker {}: eventfd: {}", index_, errno_text()));
  std::promise<Result<void>> ready;
  auto ready_future = ready.get_future();
  thread_ = std::thread([this, &ready] {
    name_this_thread(fmt::format("rg-worker-{}", index_));
    // The ring is created on the thread that submits: SINGLE_ISSUER binds it to this task.
    if (auto r = ring_.init(kRingEntries); !r) {
      ready.set_value(make_error(fmt::format("worker {}: {}", index_, r.error())));
      return;
    }
    if (auto r = buffers_.init(ring_, kBufferGroup, config_.buffer_count, config_.buffer_size); !r) {
      ready.set_value(make_error(fmt::format("worker {}: {}", index_, r.error())));
      return;
    }
    ready.set_value(Result<void>{});
    run();
  });
  auto result = ready_future.get();
  if (!result.ok())
    join();
  return result;
}

void Worker::request_stop()
{
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0 && ::write(wake_fd_, &one, sizeof one) < 0)
    fmt::print(stderr, "riskgate: worker {}: wake-up: {}\n", index_, errno_text());
}

void Worker::join()
{
  if (thread_.joinable())
    thread_.join();
}

void Worker::collect_health(std::vector<UpstreamHealth> &out) const
{
  std::lock_guard lock(targets_mu_);
  for (const auto &t : targets_) {
    UpstreamHealth *h = nullptr;
    for (auto &existing : out)
      if (existing.name == t->name)
        h = &existing;
    const auto requests = t->requests.load(std::memory_order_relaxed);
    if (h == nullptr) {
      out.push_back(UpstreamHealth{t->name, 0, 0, 0, true});
      h = &out.back();
    }
    const auto consecutive = t->consecutive_failures.load(std::memory_order_relaxed);
    h->consecutive_failures = std::max(h->consecutive_failures, consecutive);
    if (requests > 0) {
      // Workers see similar traffic (SO_REUSEPORT): the worst worker's view is the honest one.
      h->error_ratio = std::max(h->error_ratio, t->error_ewma.load(std::memory_order_relaxed));
      h->latency_ewma_ms = std::max(h->latency_ewma_ms, t->latency_ewma_ms.load(std::memory_order_relaxed));
    }
    h->healthy = h->consecutive_failures < 5 && h->error_ratio < 0.5;
  }
}

void Worker::record(Target &t, bool ok, std::uint64_t latency_ns)
{
  constexpr double alpha = 0.05;
  t.requests.store(t.requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const std::uint32_t consecutive = ok ? 0 : t.view.consecutive_failures + 1;
  const double error = (1 - alpha) * t.view.error_ratio + (ok ? 0.0 : alpha);
  double latency = t.view.latency_ewma_ms;
  if (latency_ns > 0) {
    const double ms = static_cast<double>(latency_ns) / 1e6;
    latency = latency == 0 ? ms : (1 - alpha) * latency + alpha * ms;
  }
  if (!ok)
    t.failures.store(t.failures.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  t.view.consecutive_failures = consecutive;
  t.view.error_ratio = error;
  t.view.latency_ewma_ms = latency;
  t.view.healthy = consecutive < 5 && error < 0.5;
  t.consecutive_failures.store(consecutive, std::memory_order_relaxed);
  t.error_ewma.store(error, std::memory_order_relaxed);
  t.latency_ewma_ms.store(latency, std::memory_order_relaxed);
}

std::uint64_t Worker::now_ns() const
{
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------- loop

void Worker::run()
{
  now_ms_ = monotonic_ms();
  for (auto &l : listeners_) {
    arm_accept(*l);
    ++open_listeners_;
  }
  arm_tick();
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, tag(&wake_value_, op_worker));

  std::array<io_uring_cqe *, 256> cqes{};
  while (
      !(stopping_ && clients_.empty() && open_listeners_ == 0 && all_clients_.empty() && all_ups_.empty())) {
    const int rc = io_uring_submit_and_wait(ring_.get(), 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      fmt::print(stderr, "riskgate: worker {}: io_uring_submit_and_wait: {}\n", index_, errno_text(rc));
      break;
    }
    now_ms_ = monotonic_ms();
    unsigned n = 0;
    while ((n = io_uring_peek_batch_cqe(ring_.get(), cqes.data(), cqes.size())) > 0) {
      for (unsigned i = 0; i < n; ++i) dispatch(cqes[i]);
      io_uring_cq_advance(ring_.get(), n);
    }
    sweep();
  }
}

// Closed objects are freed here, between batches, once no SQE of theirs is in flight: a handler
// never frees an object that an enclosing handler still uses.
void Worker::sweep()
{
  std::erase_if(dead_clients_, [this](ClientConn *c) {
    if (c->ep.inflight > 0)
      return false;
    ::close(c->ep.fd);
    all_clients_.erase(c);
    release_exchange(*c);
    delete c;
    return true;
  });
  std::erase_if(dead_ups_, [this](UpConn *u) {
    if (u->ep.inflight > 0)
      return false;
    ::close(u->ep.fd);
    all_ups_.erase(u);
    delete u;
    return true;
  });
}

void Worker::dispatch(io_uring_cqe *cqe)
{
  const std::uint64_t data = io_uring_cqe_get_data64(cqe);
  const auto op = static_cast<Op>(data & 7);
  void *object = reinterpret_cast<void *>(data & ~std::uint64_t{7});
  switch (op) {
    case op_ignore: return;
    case op_accept: on_accept(*static_cast<ListenerSocket *>(object), cqe); return;
    case op_client_recv: on_client_recv(*static_cast<ClientConn *>(object), cqe); return;
    case op_client_send: on_client_send(*static_cast<ClientConn *>(object), cqe->res); return;
    case op_up_recv: on_up_recv(*static_cast<UpConn *>(object), cqe); return;
    case op_up_send: on_up_send(*static_cast<UpConn *>(object), cqe->res); return;
    case op_up_connect: on_up_connect(*static_cast<UpConn *>(object), cqe->res); return;
    case op_worker:
      if (object == &tick_ts_) {
        on_tick();
      } else {
        begin_drain();
      }
      return;
  }
}

void Worker::arm_tick()
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(sqe, tag(&tick_ts_, op_worker));
}

void Worker::arm_accept(ListenerSocket &l)
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, tag(&l, op_accept));
  l.armed = true;
}

void Worker::arm_recv(Endpoint &ep, std::uint64_t user_data)
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_recv_multishot(sqe, ep.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  io_uring_sqe_set_data64(sqe, user_data);
  ep.recv_armed = true;
  ++ep.inflight;
}

void Worker::pause_recv(Endpoint &ep, std::uint64_t user_data)
{
  if (ep.recv_paused)
    return;
  ep.recv_paused = true;
  if (ep.recv_armed) {
    io_uring_sqe *sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, op_ignore);
  }
}

void Worker::resume_recv(Endpoint &ep, std::uint64_t user_data)
{
  if (!ep.recv_paused)
    return;
  ep.recv_paused = false;
  if (!ep.recv_armed && !ep.closed)
    arm_recv(ep, user_data);
}

void Worker::flush(Endpoint &ep, std::uint64_t user_data)
{
  if (ep.sending || ep.closed || !ep.ready)
    return;
  if (ep.out_off >= ep.out.size()) {
    if (ep.queued.empty())
      return;
    ep.out.swap(ep.queued);
    ep.queued.clear();
    ep.out_off = 0;
    ep.retractable_from = std::string::npos;
  }
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_send(sqe, ep.fd, ep.out.data() + ep.out_off, ep.out.size() - ep.out_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data);
  ep.sending = true;
  ++ep.inflight;
}

void Worker::on_tick()
{
  if (!stopping_ || !clients_.empty())
    arm_tick();
  if (stopping_ && now_ms_ >= drain_deadline_ms_) {
    while (!clients_.empty()) close_client(*clients_.back());
    return;
  }
  for (std::size_t i = clients_.size(); i-- > 0;) {
    if (i < clients_.size() && clients_[i]->deadline_ms <= now_ms_)
      client_timeout(*clients_[i]);
  }
  for (auto &l : listeners_)
    if (!l->armed && l->fd >= 0 && !stopping_)
      arm_accept(*l);  // after EMFILE and the like: retry once per tick, not in a hot loop
}

void Worker::begin_drain()
{
  if (stopping_)
    return;
  stopping_ = true;
  drain_deadline_ms_ = now_ms_ + config_.timeouts.drain_ms;
  for (auto &l : listeners_) {
    if (l->armed) {
      io_uring_sqe *sqe = ring_.sqe();
      io_uring_prep_cancel64(sqe, tag(l.get(), op_accept), 0);
      io_uring_sqe_set_data64(sqe, op_ignore);
    } else if (l->fd >= 0) {
      ::close(l->fd);
      l->fd = -1;
      --open_listeners_;
    }
  }
  for (std::size_t i = clients_.size(); i-- > 0;) {
    if (i >= clients_.size())
      continue;
    ClientConn &c = *clients_[i];
    if (c.phase == ClientConn::Phase::idle && c.pending.empty() && c.ep.unsent() == 0)
      close_client(c);
    else
      c.close_after = true;
  }
  std::vector<UpConn *> idle;
  {
    std::lock_guard lock(targets_mu_);
    for (auto &t : targets_) idle.insert(idle.end(), t->idle.begin(), t->idle.end());
  }
  for (auto *u : idle) close_up(*u);
}

// ---------------------------------------------------------------- client side

void Worker::on_accept(ListenerSocket &l, const io_uring_cqe *cqe)
{
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
    l.armed = false;
    if (stopping_ && l.fd >= 0) {
      ::close(l.fd);
      l.fd = -1;
      --open_listeners_;
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
  if (l.config->transparent) {
    sockaddr_storage original{};
    len = sizeof original;
    const int level = c->local_address.sin6_family == AF_INET6 ? SOL_IPV6 : SOL_IP;
    if (getsockopt(fd, level, kSoOriginalDst, &original, &len) == 0 && original.ss_family != AF_UNSPEC &&
        !same_address(original, to_storage(c->local_address)))
      c->target = transparent_target(original);
  } else {
    c->target = l.target;
  }
  c->deadline_ms = now_ms_ + config_.timeouts.header_ms;
  c->slot = clients_.size();
  clients_.push_back(c);
  all_clients_.insert(c);
  arm_recv(c->ep, tag(c, op_client_recv));
}

// Accounts for one multishot receive CQE. Bytes go to `consume` (unless the endpoint is closed) and
// the buffer returns to the ring at once. True at the end of the stream (EOF or error); ENOBUFS and
// cancellation only end this receive, the caller re-arms it if still wanted.
template <class Consume>
bool Worker::take_recv(Endpoint &ep, const io_uring_cqe *cqe, Consume &&consume)
{
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
    ep.recv_armed = false;
    --ep.inflight;
  }
  const int res = cqe->res;
  if (res > 0) {
    const auto id = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (!ep.closed)
      consume(buffers_.buffer(id), static_cast<std::size_t>(res));
    buffers_.recycle(id);
    return false;
  }
  return res == 0 || (res != -ENOBUFS && res != -ECANCELED);
}

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

int Worker::on_request_head(ClientConn &c)
{
  unpark_buffers(c.ep);
  HttpParser &p = c.parser;
  if (const auto error = validate_request(p); error.status != 0) {
    p.fail(error.status, error.reason);
    return -1;
  }
  if (!p.keep_alive() || stopping_)
    c.close_after = true;

  Exchange &ex = acquire_exchange(c);
  RequestView &v = ex.view;
  const auto connection = p.header("connection").value_or(std::string_view{});
  for (std::size_t i = 0; i < p.header_count(); ++i)
    if (!is_hop_by_hop(p.header_name(i), connection))
      ex.headers.push_back(HeaderView{p.header_name(i), p.header_value(i)});
  v.method = p.method();
  v.target = p.target();
  v.path = v.target.substr(0, v.target.find('?'));
  v.host = p.header("host").value_or(std::string_view{});
  v.http_minor = static_cast<std::uint8_t>(p.http_minor());
  v.headers = ex.headers;
  v.chunked = p.chunked();
  v.content_length = p.has_content_length() ? std::optional<std::uint64_t>(p.content_length()) : std::nullopt;
  v.received_ns = now_ns();

  try {
    hook_.on_request(v, ex.verdict);
  } catch (const std::exception &e) {
    ex.verdict.reset();
    ex.verdict.kind = HookVerdict::Kind::respond;
    ex.verdict.status = 500;
    ex.verdict.reason = "risk hook failed";
    fmt::print(stderr, "riskgate: worker {}: request hook threw: {}\n", index_, e.what());
  }
  c.hooked = true;
  const bool has_body = p.chunked() || p.content_length() > 0;

  if (ex.verdict.kind == HookVerdict::Kind::close) {
    c.abort_parse = true;
    return -1;
  }
  if (ex.verdict.kind == HookVerdict::Kind::forward && c.target == nullptr) {
    ex.verdict.kind = HookVerdict::Kind::respond;
    ex.verdict.status = 502;
    ex.verdict.reason = "original destination unknown";
    ex.verdict.headers.clear();
  }
  if (ex.verdict.kind == HookVerdict::Kind::respond) {
    // The body is not read: answering before it arrives means the connection cannot be reused.
    respond_local(c, ex.verdict.status, ex.verdict.reason, has_body || ex.verdict.close_after);
    p.set_body_sink(nullptr, Framing::none);
    if (has_body) {
      c.abort_parse = true;
      return -1;
    }
    return 0;
  }

  UpConn *u = acquire_upstream(*c.target);
  if (u == nullptr) {
    respond_local(c, 502, "upstream connect: no socket", has_body);
    c.abort_parse = has_body;
    return has_body ? -1 : 0;
  }
  u->client = &c;
  c.up = u;
  c.upstream_start_ns = v.received_ns;
  const std::size_t head_start = u->ep.queued.size();
  emit_request_head(p, ex.verdict.headers, c.target->host, u->ep.queued);
  const auto m = p.method();
  const bool idempotent = m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE";
  if (u->reused && !has_body && idempotent)
    ex.replay.assign(u->ep.queued, head_start);
  else
    ex.replay.clear();
  if (has_body) {
    // Expect was stripped (hop-by-hop here): the proxy itself invites the body once the hook allows.
    if (const auto expect = p.header("expect");
        expect && iequals(*expect, "100-continue") && p.http_minor() >= 1)
      c.ep.queued.append("HTTP/1.1 100 Continue\r\n\r\n");
    p.set_body_sink(&u->ep.queued, p.chunked() ? Framing::chunked : Framing::length);
    c.deadline_ms = now_ms_ + config_.timeouts.body_ms;
  }
  return 0;
}

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
  v.destination = c.target != nullptr ? c.target->address : sockaddr_storage{};
  v.upstream_name = c.target != nullptr ? std::string_view(c.target->name) : std::string_view{};
  v.upstream = c.target != nullptr ? &c.target->view : nullptr;
  return ex;
}

void Worker::release_exchange(ClientConn &c)
{
  if (c.ex == nullptr)
    return;
  spare_exchanges_.emplace_back(c.ex);
  c.ex = nullptr;
}

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
  if (c.ex != nullptr)
    c.ex->verdict.headers.clear();  // forward headers were meant for the upstream
  respond_local(c, error.status, error.reason, true);
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

void Worker::finish_exchange(ClientConn &c)
{
  if (c.hooked && c.ex != nullptr) {
    ExchangeResult result;
    result.decision_id = c.ex->verdict.decision_id;
    result.status = c.status;
    result.upstream_ns = c.local || c.upstream_start_ns == 0 ? 0 : now_ns() - c.upstream_start_ns;
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

void Worker::on_client_send(ClientConn &c, int res)
{
  --c.ep.inflight;
  c.ep.sending = false;
  if (c.ep.closed) {
    return;
  }
  if (res < 0) {
    close_client(c);
    return;
  }
  c.ep.out_off += static_cast<std::size_t>(res);
  park_idle(c);
  if (c.phase == ClientConn::Phase::waiting || c.phase == ClientConn::Phase::closing)
    c.deadline_ms = std::max(c.deadline_ms, now_ms_ + config_.timeouts.body_ms);
  flush(c.ep, tag(&c, op_client_send));
  if (c.up != nullptr && c.ep.unsent() < kLowWater)
    resume_recv(c.up->ep, tag(c.up, op_up_recv));
  if (c.phase == ClientConn::Phase::closing)
    after_client_flush(c);
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
    if (c.ex != nullptr)
      c.ex->verdict.headers.clear();
    respond_local(c, 408, c.parser.head_complete() ? "request body timeout" : "request header timeout", true);
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

// ---------------------------------------------------------------- upstream side

UpConn *Worker::acquire_upstream(Target &t, bool fresh)
{
  while (!fresh && !t.idle.empty()) {
    UpConn *u = t.idle.back();
    t.idle.pop_back();
    if (!u->ep.closed) {
      u->reused = true;
      u->got_bytes = false;
      return u;
    }
  }
  const int fd = ::socket(t.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return nullptr;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto *u = new UpConn(*this, config_.limits);
  u->ep.fd = fd;
  u->target = &t;
  u->connecting = true;
  all_ups_.insert(u);
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr *>(&t.address), t.address_len);
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
  --u.ep.inflight;
  u.ep.sending = false;
  if (u.ep.closed) {
    return;
  }
  if (res < 0) {
    upstream_failed(u, 502, fmt::format("upstream send: {}", errno_text(res)));
    return;
  }
  u.ep.out_off += static_cast<std::size_t>(res);
  flush(u.ep, tag(&u, op_up_send));
  if (u.client != nullptr && u.ep.unsent() < kLowWater)
    resume_recv(u.client->ep, tag(u.client, op_client_recv));
}

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
  record(*u.target, u.parser.status_code() < 500, now_ns() - c->upstream_start_ns);
  c->response_body_bytes = u.parser.body_bytes();
  release_upstream(u, u.parser.keep_alive() && c->request_done && !trailing_bytes);
  c->up = nullptr;
  if (!c->request_done)
    c->close_after = true;  // answered before the whole body arrived: stop reading it, then close
  finish_exchange(*c);
  continue_client(*c);
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

void Worker::release_upstream(UpConn &u, bool reusable)
{
  u.client = nullptr;
  if (!reusable || stopping_ || u.target->idle.size() >= config_.idle_upstream_per_target ||
      u.ep.unsent() > 0) {
    close_up(u);
    return;
  }
  u.parser.next_message();
  u.target->idle.push_back(&u);
}

void Worker::upstream_failed(UpConn &u, int status, std::string_view reason)
{
  ClientConn *c = u.client;
  if (c != nullptr && u.reused && !u.got_bytes && !c->response_started && c->request_done &&
      c->ex != nullptr && !c->ex->replay.empty()) {
    // The keep-alive race: the upstream closed a pooled connection as the request arrived, before
    // answering anything. Not a failure of the upstream; the request goes once more on a new one.
    close_up(u);
    if (UpConn *fresh = acquire_upstream(*c->target, true); fresh != nullptr) {
      fresh->client = c;
      c->up = fresh;
      fresh->ep.queued.swap(c->ex->replay);
      c->ex->replay.clear();
      return;
    }
  }
  record(*u.target, false, 0);
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
  if (c->ex != nullptr)
    c->ex->verdict.headers.clear();
  respond_local(*c, status, reason, !c->request_done);
  finish_exchange(*c);
  continue_client(*c);
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
  auto &idle = u.target->idle;
  if (auto it = std::find(idle.begin(), idle.end(), &u); it != idle.end())
    idle.erase(it);
  ::shutdown(u.ep.fd, SHUT_RDWR);
  if (u.ep.recv_armed || u.connecting) {
    io_uring_sqe *sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, tag(&u, u.connecting ? op_up_connect : op_up_recv), 0);
    io_uring_sqe_set_data64(sqe, op_ignore);
  }
  dead_ups_.push_back(&u);
}

}  // namespace riskgate::proxy
