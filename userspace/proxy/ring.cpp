#include "ring.h"
#include <riskgate/common/errors.h>

#include <sys/mman.h>

#include <cstring>

#include <fmt/format.h>

namespace riskgate::proxy {

Ring::~Ring()
{
  if (ready_)
    io_uring_queue_exit(&ring_);
}

Result<void> Ring::init(unsigned entries)
{
  const unsigned attempts[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                               IORING_SETUP_COOP_TASKRUN, 0};
  int rc = 0;
  for (const unsigned flags : attempts) {
    io_uring_params params{};
    params.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    params.cq_entries = entries * 4;  // multishot receives post many CQEs per SQE
    rc = io_uring_queue_init_params(entries, &ring_, &params);
    if (rc == 0) {
      ready_ = true;
      defer_taskrun_ = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      return {};
    }
    if (rc != -EINVAL)
      break;
  }
  return make_error(fmt::format("io_uring_queue_init({} entries): {}", entries, errno_text(rc)));
}

io_uring_sqe *Ring::sqe()
{
  io_uring_sqe *sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

BufferRing::~BufferRing()
{
  if (ring_ != nullptr)
    munmap(ring_, ring_bytes_);
  if (base_ != nullptr)
    munmap(base_, data_bytes_);
}

Result<void> BufferRing::init(Ring &ring, std::uint16_t group, std::uint32_t count, std::uint32_t size)
{
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
    return make_error(fmt::format("buffer ring: count {} must be a power of two <= 32768", count));
  group_ = group;
  count_ = count;
  size_ = size;
  ring_bytes_ = count * sizeof(io_uring_buf);
  void *mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED)
    return make_error(fmt::format("buffer ring: mmap {} bytes: {}", ring_bytes_, errno_text()));
  ring_ = static_cast<io_uring_buf_ring *>(mem);
  data_bytes_ = static_cast<std::size_t>(count) * size;
  mem = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED)
    return make_error(fmt::format("buffer ring: mmap {} bytes: {}", data_bytes_, errno_text()));
  base_ = static_cast<char *>(mem);

  io_uring_buf_ring_init(ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = group;
  if (const int rc = io_uring_register_buf_ring(ring.get(), &reg, 0); rc != 0)
    return make_error(fmt::format("io_uring_register_buf_ring(group {}): {}", group, errno_text(rc)));
  const int mask = io_uring_buf_ring_mask(count);
  for (std::uint32_t i = 0; i < count; ++i)
    io_uring_buf_ring_add(ring_, buffer(static_cast<std::uint16_t>(i)), size, static_cast<std::uint16_t>(i),
                          mask, static_cast<int>(i));
  io_uring_buf_ring_advance(ring_, static_cast<int>(count));
  return {};
}

void BufferRing::recycle(std::uint16_t id)
{
  io_uring_buf_ring_add(ring_, buffer(id), size_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace riskgate::proxy
