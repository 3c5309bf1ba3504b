// The reactor: the worker's thread and ring, completion dispatch, the tick and its deadlines, stop
// and drain. The client side is in client.cpp, the upstream side in upstream.cpp.
#include "worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <future>

#include <fmt/format.h>

#include <riskgate/common/thread_name.h>
#include <riskgate/common/errors.h>

namespace riskgate::proxy {

namespace {

constexpr std::uint16_t kBufferGroup = 0;
constexpr unsigned kRingEntries = 4096;
constexpr std::uint32_t kTickMs = 100;

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

}  // namespace

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
    l->pool = pool_for(*upstream, upstream_name);
  listeners_.push_back(std::move(l));
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

// ---------------------------------------------------------------- tick, stop

void Worker::arm_tick()
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(sqe, tag(&tick_ts_, op_worker));
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
      close_listener(*l);
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
    std::lock_guard lock(pools_mu_);
    for (auto &pool : pools_) idle.insert(idle.end(), pool->idle().begin(), pool->idle().end());
  }
  for (auto *u : idle) close_up(*u);
}

// Stopping, once no accept is armed on it: once every listener is closed the loop may end.
void Worker::close_listener(ListenerSocket &l)
{
  ::close(l.fd);
  l.fd = -1;
  --open_listeners_;
}

}  // namespace riskgate::proxy
