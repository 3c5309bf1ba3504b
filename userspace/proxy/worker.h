// One reactor thread: its own io_uring, buffer ring, listener sockets, connections and upstream
// pools. Nothing here is shared with other workers except the hook and the health counters, which
// other threads only read (docs/proxy.md).
//
// Worker is one class in three files, one per part of the exchange: worker.cpp (the reactor: ring,
// completion dispatch, the tick and its deadlines, stop and drain), client.cpp (accept, receive,
// request heads, answers, keep-alive parking, backpressure) and upstream.cpp (destinations,
// connect, send, response relay). The ring operations both sides use on every request are inline
// here, so that splitting the files costs no call.
#pragma once

#include <linux/time_types.h>
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "client.h"
#include "endpoint.h"
#include "http.h"
#include <riskgate/proxy/proxy.h>
#include "ring.h"
#include "upstream.h"
#include "upstream_pool.h"

namespace riskgate::proxy {

struct ListenerSocket {
  int fd = -1;
  const ListenerConfig *config = nullptr;
  UpstreamPool *pool = nullptr;  // gateway: the named upstream's
  bool armed = false;
};

// CLOCK_MONOTONIC in ns: request receive times and upstream latencies.
inline std::uint64_t monotonic_ns()
{
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

class Worker {
 public:
  Worker(unsigned index, const ProxyConfig &config, RequestHook &hook);
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  // Called before start(), from the owning Proxy.
  void add_listener(int fd, const ListenerConfig &config, const sockaddr_storage *upstream,
                    const std::string &upstream_name);
  // Spawns the thread; returns once its ring is set up (or why it could not be).
  Result<void> start();
  void request_stop();  // any thread
  void join();
  void collect_health(std::vector<UpstreamHealth> &out) const;  // any thread

  // ---- called by the connections' parsers ----
  int on_request_head(ClientConn &c);
  int on_response_head(UpConn &u);

 private:
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
  static std::uint64_t tag(T *object, Op op)
  {
    return reinterpret_cast<std::uint64_t>(object) | op;
  }

  // Backpressure: unsent bytes toward one side beyond kHighWater pause the receive on the other
  // side; below kLowWater it resumes.
  static constexpr std::size_t kHighWater = 1 << 20;
  static constexpr std::size_t kLowWater = 256 << 10;

  // ---- the reactor (worker.cpp) ----
  void run();
  void dispatch(io_uring_cqe *cqe);
  void sweep();
  void arm_tick();
  void on_tick();
  void begin_drain();
  void close_listener(ListenerSocket &l);

  // ---- ring operations on an endpoint (inline, below) ----
  void arm_recv(Endpoint &ep, std::uint64_t user_data);
  void pause_recv(Endpoint &ep, std::uint64_t user_data);
  void resume_recv(Endpoint &ep, std::uint64_t user_data);
  void flush(Endpoint &ep, std::uint64_t user_data);
  template <class Consume>
  bool take_recv(Endpoint &ep, const io_uring_cqe *cqe, Consume &&consume);
  bool take_send(Endpoint &ep, int res);

  // ---- client side (client.cpp) ----
  void arm_accept(ListenerSocket &l);
  void on_accept(ListenerSocket &l, const io_uring_cqe *cqe);
  void open_client(ListenerSocket &l, int fd);
  UpstreamPool *original_destination(const ClientConn &c);
  void on_client_recv(ClientConn &c, const io_uring_cqe *cqe);
  void client_bytes(ClientConn &c, const char *data, std::size_t len);
  std::size_t parse_client(ClientConn &c, const char *data, std::size_t len);
  void drain_pending(ClientConn &c);
  void settle_eof(ClientConn &c);
  void start_request(ClientConn &c);
  // on_request_head, step by step
  bool accept_head(ClientConn &c);
  Exchange &acquire_exchange(ClientConn &c);
  void ask_hook(Exchange &ex);
  int act_on_verdict(ClientConn &c, Exchange &ex);
  int answer_before_body(ClientConn &c, int status, std::string_view reason, bool close, bool has_body);
  int forward_request(ClientConn &c, Exchange &ex, bool has_body);
  void write_upstream_head(const ClientConn &c, UpConn &u, Exchange &ex, bool has_body);
  void stream_body(ClientConn &c, UpConn &u);
  // the end of an exchange
  void request_failed(ClientConn &c);
  void request_complete(ClientConn &c);
  void respond_local(ClientConn &c, int status, std::string_view reason, bool close);
  void respond_error(ClientConn &c, int status, std::string_view reason, bool close);
  void finish_exchange(ClientConn &c);
  void release_exchange(ClientConn &c);
  void continue_client(ClientConn &c);
  void park_idle(ClientConn &c);
  void unpark_head(ClientConn &c);
  void unpark_buffers(Endpoint &ep);
  void on_client_send(ClientConn &c, int res);
  void after_client_flush(ClientConn &c);
  void client_timeout(ClientConn &c);
  void close_client(ClientConn &c);

  // ---- upstream side (upstream.cpp) ----
  UpstreamPool *pool_for(const sockaddr_storage &address, const std::string &name);
  UpConn *acquire_upstream(UpstreamPool &pool, bool fresh = false);
  UpConn *connect_upstream(UpstreamPool &pool);
  void on_up_connect(UpConn &u, int res);
  void on_up_send(UpConn &u, int res);
  void on_up_recv(UpConn &u, const io_uring_cqe *cqe);
  void up_bytes(UpConn &u, const char *data, std::size_t len);
  void response_complete(UpConn &u, bool trailing_bytes);
  void release_upstream(UpConn &u, bool reusable);
  void upstream_failed(UpConn &u, int status, std::string_view reason);
  bool resend_after_keep_alive_race(UpConn &u, ClientConn &c);
  void close_up(UpConn &u);

  const unsigned index_;
  const ProxyConfig &config_;
  RequestHook &hook_;
  BufferRing buffers_;  // declared before the ring: the ring is torn down first
  Ring ring_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
  __kernel_timespec tick_ts_{};
  __kernel_timespec connect_ts_{};
  std::uint64_t now_ms_ = 0;

  std::vector<std::unique_ptr<ListenerSocket>> listeners_;
  unsigned open_listeners_ = 0;
  mutable std::mutex pools_mu_;  // guards the pool lists' shape (transparent adds at run time)
  std::vector<std::unique_ptr<UpstreamPool>> pools_;
  std::unordered_map<std::string, UpstreamPool *> pools_by_name_;

  std::vector<ClientConn *> clients_;             // open client connections
  std::unordered_set<ClientConn *> all_clients_;  // open or closing (CQEs outstanding)
  std::unordered_set<UpConn *> all_ups_;
  std::vector<ClientConn *> dead_clients_;  // closed, freed by sweep() once their CQEs are in
  std::vector<UpConn *> dead_ups_;
  std::vector<std::string> spare_buffers_;            // send buffers of idle connections, reused
  std::vector<HttpParser::HeadStorage> spare_heads_;  // their parsers' head storage, reused
  std::vector<std::unique_ptr<Exchange>> spare_exchanges_;
  std::uint64_t next_connection_ = 0;
  bool stopping_ = false;
  std::uint64_t drain_deadline_ms_ = 0;
};

// ---- ring operations on an endpoint ----

inline void Worker::arm_recv(Endpoint &ep, std::uint64_t user_data)
{
  io_uring_sqe *sqe = ring_.sqe();
  io_uring_prep_recv_multishot(sqe, ep.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  io_uring_sqe_set_data64(sqe, user_data);
  ep.recv_armed = true;
  ++ep.inflight;
}

inline void Worker::pause_recv(Endpoint &ep, std::uint64_t user_data)
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

inline void Worker::resume_recv(Endpoint &ep, std::uint64_t user_data)
{
  if (!ep.recv_paused)
    return;
  ep.recv_paused = false;
  if (!ep.recv_armed && !ep.closed)
    arm_recv(ep, user_data);
}

inline void Worker::flush(Endpoint &ep, std::uint64_t user_data)
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

// Accounts for one send CQE: what the kernel took leaves `out`. False when the endpoint was closed
// meanwhile or the send failed (res < 0); the caller tells the two apart by `closed`.
inline bool Worker::take_send(Endpoint &ep, int res)
{
  --ep.inflight;
  ep.sending = false;
  if (ep.closed || res < 0)
    return false;
  ep.out_off += static_cast<std::size_t>(res);
  return true;
}

}  // namespace riskgate::proxy
