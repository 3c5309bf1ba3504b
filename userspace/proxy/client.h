// A client connection and the exchange it has in flight. The worker drives both (client.cpp).
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "endpoint.h"
#include "http.h"
#include <riskgate/proxy/request.h>

namespace riskgate::proxy {

class Worker;
class UpstreamPool;
struct ListenerSocket;
struct UpConn;

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
  UpstreamPool *pool = nullptr;  // where requests go (transparent: the original destination's)
  std::size_t slot = 0;          // index in Worker::clients_
  std::string pending;           // received, not yet parsed (pipelined behind an exchange in flight)
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

}  // namespace riskgate::proxy
