// A connection to an upstream, serving one client exchange at a time. The worker drives it
// (upstream.cpp); between exchanges it waits in its UpstreamPool.
#pragma once

#include "endpoint.h"
#include "http.h"

namespace riskgate::proxy {

class Worker;
class UpstreamPool;
struct ClientConn;

struct UpConn final : HeadHandler {
  UpConn(Worker &w, const HttpLimits &limits) : worker(w), parser(HTTP_RESPONSE, limits, *this) {}
  int on_head(HttpParser &) override;

  Worker &worker;
  Endpoint ep;
  HttpParser parser;
  UpstreamPool *pool = nullptr;
  ClientConn *client = nullptr;
  bool connecting = false;
  bool reused = false;     // taken from the pool (not connected for this request)
  bool got_bytes = false;  // the current response has started arriving
};

}  // namespace riskgate::proxy
