// The socket half of a connection, as the worker's ring drives it (docs/proxy.md, buffer invariants).
#pragma once

#include <cstddef>
#include <string>

namespace riskgate::proxy {

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

}  // namespace riskgate::proxy
