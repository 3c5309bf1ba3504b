// Reader of the datapath's ring buffer (rg_events): one thread polls and hands every rg_event to a
// callback. Opened from the pin root, so it works for any process that can read the pins.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <riskgate/abi.h>
#include <riskgate/common/result.h>

struct ring_buffer;  // libbpf

namespace riskgate::kernel {

class EventReader {
 public:
  using Callback = std::function<void(const rg_event &)>;
  static Result<std::unique_ptr<EventReader>> open(const std::string &pin_root, Callback callback);
  ~EventReader();
  EventReader(const EventReader &) = delete;
  EventReader &operator=(const EventReader &) = delete;

  // Delivers what is ready, waiting up to timeout_ms; returns the number of events.
  Result<int> poll(int timeout_ms);
  // Polls on a thread until stop() or destruction.
  void start();
  void stop();

 private:
  EventReader() = default;
  static int on_sample(void *ctx, void *data, std::size_t size);
  ::ring_buffer *ring_ = nullptr;
  int map_fd_ = -1;
  Callback callback_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace riskgate::kernel
