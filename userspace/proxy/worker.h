// One reactor thread: its own io_uring, buffer ring, listener sockets, connections and upstream
// pools. Nothing here is shared with other workers except the hook and the health counters, which
// other threads only read (docs/proxy.md).
#pragma once

#include <linux/time_types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "http.h"
#include <riskgate/proxy/proxy.h>
#include "ring.h"

namespace riskgate::proxy {

class Worker;
struct UpConn;

// One destination: its idle keep-alive connections and its health. The counters are written by the
// owning worker only and read by Proxy::upstream_health from any thread.
struct Target {
  std::string name;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string host;  // "ip:port", the Host of an HTTP/1.0 request that had none
  std::vector<UpConn *> idle;
  UpstreamHealth view;  // worker-local copy handed to the hook
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint32_t> consecutive_failures{0};
  std::atomic<double> error_ewma{0};
  std::atomic<double> latency_ewma_ms{0};
};

struct ListenerSocket {
  int fd = -1;
  const ListenerConfig *config = nullptr;
  Target *target = nullptr;  // gateway: the named upstream
  bool armed = false;
};

// A socket driven by the ring. `out` is what the kernel is sending (stable while `sending`), `queued`
// collects what comes next; they swap when a send completes, keeping their capacity.
struct Endpoint {
  int fd = -1;
  int inflight = 0;  // SQEs whose final CQE has not arrived; the owner is freed at zero once closed
  bool recv_armed = false;
  bool recv_paused = false;
  bool sending = false;
  bool closed = false;
  bool ready = false;  // connected: sends may start
  std::string out;
  std::size_t out_off = 0;
  std::string queued;
  // Where the answer being relayed starts in `queued` while none of it has gone to the kernel:
  // until then a failing upstream's answer can be taken back for a 502 (npos: not retractable).
  std::size_t retractable_from = std::string::npos;
  std::size_t unsent() const { return out.size() - out_off + queued.size(); }
};

// What one request needs beyond its connection: the hook's view and verdict. Taken from the
// worker's spares when a head arrives and returned when the exchange ends, so that an idle
// keep-alive connection does not carry it.
struct Exchange {
  RequestView view;
  std::vector<HeaderView> headers;
  HookVerdict verdict;
  // The upstream request once more, for a bodiless idempotent request sent on a reused connection:
  // if the upstream closed that connection as the request arrived, it is sent again, once.
  std::string replay;
};

struct ClientConn final : HeadHandler {
  ClientConn(Worker &w, const HttpLimits &limits) : worker(w), parser(HTTP_REQUEST, limits, *this) {}
  int on_head(HttpParser &) override;

  enum class Phase {
    idle,     // between requests
    request,  // head or body arriving
    waiting,  // request complete, response pending
    closing,  // flushing the last response, then lingering until the peer closes
  };

  Worker &worker;
  Endpoint ep;
  HttpParser parser;
  ListenerSocket *listener = nullptr;
  Target *target = nullptr;  // where requests go (transparent: the original destination)
  std::size_t slot = 0;      // index in Worker::clients_
  std::string pending;       // received, not yet parsed (pipelined behind an exchange in flight)
  Phase phase = Phase::idle;
  UpConn *up = nullptr;
  std::uint64_t deadline_ms = 0;
  bool lingering = false;
  bool peer_eof = false;  // the client half-closed

  // facts of the connection, copied into each request's view
  sockaddr_in6 peer_address{};  // large enough for sockaddr_in too
  sockaddr_in6 local_address{};
  std::uint64_t cookie = 0;
  std::uint64_t connection_id = 0;

  // the exchange in progress
  Exchange *ex = nullptr;
  bool hooked = false;       // on_request was called: on_complete is owed
  bool local = false;        // answered by the proxy (hook verdict or error)
  bool abort_parse = false;  // the parser was stopped on purpose (answered, or closed by the hook)
  bool request_done = false;
  bool response_started = false;
  bool close_after = false;
  int status = 0;
  std::uint64_t upstream_start_ns = 0;
  std::uint64_t response_body_bytes = 0;
};

struct UpConn final : HeadHandler {
  UpConn(Worker &w, const HttpLimits &limits) : worker(w), parser(HTTP_RESPONSE, limits, *this) {}
  int on_head(HttpParser &) override;

  Worker &worker;
  Endpoint ep;
  HttpParser parser;
  Target *target = nullptr;
  ClientConn *client = nullptr;
  bool connecting = false;
  bool reused = false;     // taken from the pool (not connected for this request)
  bool got_bytes = false;  // the current response has started arriving
};

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
  void run();
  void dispatch(io_uring_cqe *cqe);
  std::uint64_t now_ns() const;

  Target *gateway_target(const sockaddr_storage &address, const std::string &name);
  Target *transparent_target(const sockaddr_storage &address);
  void record(Target &target, bool ok, std::uint64_t latency_ns);

  void arm_accept(ListenerSocket &l);
  void arm_recv(Endpoint &ep, std::uint64_t user_data);
  void pause_recv(Endpoint &ep, std::uint64_t user_data);
  void resume_recv(Endpoint &ep, std::uint64_t user_data);
  void flush(Endpoint &ep, std::uint64_t user_data);
  void park_idle(ClientConn &c);
  void unpark_head(ClientConn &c);
  void unpark_buffers(Endpoint &ep);
  void arm_tick();

  template <class Consume>
  bool take_recv(Endpoint &ep, const io_uring_cqe *cqe, Consume &&consume);
  void on_accept(ListenerSocket &l, const io_uring_cqe *cqe);
  void on_client_recv(ClientConn &c, const io_uring_cqe *cqe);
  void on_client_send(ClientConn &c, int res);
  void on_up_recv(UpConn &u, const io_uring_cqe *cqe);
  void on_up_send(UpConn &u, int res);
  void on_up_connect(UpConn &u, int res);
  void on_tick();
  void begin_drain();

  void client_bytes(ClientConn &c, const char *data, std::size_t len);
  std::size_t parse_client(ClientConn &c, const char *data, std::size_t len);
  void start_request(ClientConn &c);
  void drain_pending(ClientConn &c);
  void settle_eof(ClientConn &c);
  void request_failed(ClientConn &c);
  void request_complete(ClientConn &c);
  void respond_local(ClientConn &c, int status, std::string_view reason, bool close);
  Exchange &acquire_exchange(ClientConn &c);
  void release_exchange(ClientConn &c);
  void finish_exchange(ClientConn &c);
  void continue_client(ClientConn &c);
  void after_client_flush(ClientConn &c);
  void client_timeout(ClientConn &c);
  void close_client(ClientConn &c);
  void sweep();

  UpConn *acquire_upstream(Target &target, bool fresh = false);
  void up_bytes(UpConn &u, const char *data, std::size_t len);
  void response_complete(UpConn &u, bool trailing_bytes);
  void upstream_failed(UpConn &u, int status, std::string_view reason);
  void release_upstream(UpConn &u, bool reusable);
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
  mutable std::mutex targets_mu_;  // guards the target lists' shape (transparent adds at run time)
  std::vector<std::unique_ptr<Target>> targets_;
  std::unordered_map<std::string, Target *> targets_by_name_;

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

}  // namespace riskgate::proxy
