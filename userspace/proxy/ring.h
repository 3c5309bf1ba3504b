// One io_uring per worker thread and its provided-buffer ring. liburing 2.3 has no
// io_uring_setup_buf_ring, so the buffer ring is mmapped and registered by hand.
#pragma once

#include <liburing.h>

#include <cstdint>

#include <riskgate/common/result.h>

namespace riskgate::proxy {

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring &) = delete;
  Ring &operator=(const Ring &) = delete;

  // Tries SINGLE_ISSUER|DEFER_TASKRUN (completions run only when this thread waits: no IPIs, batched
  // task work), then COOP_TASKRUN, then no flags, so older kernels still run. Call on the thread
  // that will submit.
  Result<void> init(unsigned entries);
  io_uring *get() { return &ring_; }
  bool defer_taskrun() const { return defer_taskrun_; }
  // A free SQE; submits what is queued when the SQ is full, so it never returns nullptr.
  io_uring_sqe *sqe();

 private:
  io_uring ring_{};
  bool ready_ = false;
  bool defer_taskrun_ = false;
};

// `count` buffers of `size` bytes in buffer group `group`, consumed by multishot receives. Invariant:
// a CQE's buffer is handed back (recycle) before its handler returns; what a connection must keep
// is copied out first, so an idle connection holds no receive buffer.
class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing &) = delete;
  BufferRing &operator=(const BufferRing &) = delete;

  Result<void> init(Ring &ring, std::uint16_t group, std::uint32_t count, std::uint32_t size);
  std::uint16_t group() const { return group_; }
  char *buffer(std::uint16_t id) const { return base_ + static_cast<std::size_t>(id) * size_; }
  void recycle(std::uint16_t id);

 private:
  io_uring_buf_ring *ring_ = nullptr;
  char *base_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t data_bytes_ = 0;
  std::uint32_t count_ = 0;
  std::uint32_t size_ = 0;
  std::uint16_t group_ = 0;
};

}  // namespace riskgate::proxy
