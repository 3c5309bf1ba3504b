#include <riskgate/kernel/events.h>
#include <riskgate/common/errors.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <riskgate/common/thread_name.h>

namespace riskgate::kernel {

Result<std::unique_ptr<EventReader>> EventReader::open(const std::string &pin_root, Callback callback)
{
  std::unique_ptr<EventReader> reader(new EventReader());
  const std::string path = pin_root + "/rg_events";
  reader->map_fd_ = ::bpf_obj_get(path.c_str());
  if (reader->map_fd_ < 0)
    return make_error(fmt::format("open pinned ring buffer {}: {}", path, errno_text()));
  reader->callback_ = std::move(callback);
  reader->ring_ = ::ring_buffer__new(reader->map_fd_, &EventReader::on_sample, reader.get(), nullptr);
  if (!reader->ring_)
    return make_error(fmt::format("ring_buffer__new on {}: {}", path, errno_text()));
  return reader;
}

EventReader::~EventReader()
{
  stop();
  if (ring_)
    ::ring_buffer__free(ring_);
  if (map_fd_ >= 0)
    ::close(map_fd_);
}

int EventReader::on_sample(void *ctx, void *data, std::size_t size)
{
  auto *self = static_cast<EventReader *>(ctx);
  if (size < sizeof(rg_event))
    return 0;
  rg_event event;
  std::memcpy(&event, data, sizeof(event));
  self->callback_(event);
  return 0;
}

Result<int> EventReader::poll(int timeout_ms)
{
  const int n = ::ring_buffer__poll(ring_, timeout_ms);
  if (n < 0 && n != -EINTR)
    return make_error(fmt::format("poll ring buffer: {}", errno_text(n)));
  return n < 0 ? 0 : n;
}

void EventReader::start()
{
  if (running_.exchange(true))
    return;
  thread_ = std::thread([this] {
    name_this_thread("rg-events");
    while (running_.load(std::memory_order_relaxed)) (void)poll(100);
  });
}

void EventReader::stop()
{
  running_ = false;
  if (thread_.joinable())
    thread_.join();
}

}  // namespace riskgate::kernel
