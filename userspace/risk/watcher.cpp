// Policy hot reload. inotify watches the policy directory (for a single file: its directory, since
// editors and `kubectl cp` replace files by rename); events are debounced so a multi-file update
// (git checkout, ConfigMap symlink swap) loads once. Reloads are serialized; evaluations never wait
// for them: the engine swaps one immutable snapshot.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <riskgate/risk/engine.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/thread_name.h>

namespace riskgate::risk {

namespace {
constexpr int kDebounceMs = 100;
}

PolicyWatcher::PolicyWatcher(Engine &engine, std::string path, Listener listener)
    : engine_(engine), path_(std::move(path)), listener_(std::move(listener))
{
}

PolicyWatcher::~PolicyWatcher()
{
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0)
    ::close(inotify_fd_);
  if (stop_fd_ >= 0)
    ::close(stop_fd_);
}

Result<void> PolicyWatcher::start()
{
  std::error_code ec;
  const bool directory = std::filesystem::is_directory(path_, ec);
  const std::string watched = directory ? path_ : std::filesystem::path(path_).parent_path().string();
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0)
    return make_error(fmt::format("inotify_init1: {}", errno_text()));
  const auto mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF;
  if (::inotify_add_watch(inotify_fd_, watched.empty() ? "." : watched.c_str(), mask) < 0)
    return make_error(fmt::format("watch {}: {}", watched, errno_text()));
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0)
    return make_error(fmt::format("eventfd: {}", errno_text()));
  thread_ = std::thread([this] { run(); });
  return {};
}

bool PolicyWatcher::reload()
{
  std::lock_guard lock(reload_mutex_);
  auto loaded = policy::load_path(path_);
  if (!loaded.ok()) {
    fmt::print(stderr, "riskgate: policy reload from {} failed, keeping version {}:\n", path_,
               engine_.policy_version());
    for (const auto &diagnostic : loaded.diagnostics)
      fmt::print(stderr, "  {}\n", policy::to_string(diagnostic));
    engine_.reject(loaded.diagnostics);
    if (listener_)
      listener_(loaded);
    return false;
  }
  engine_.install(*loaded.set);
  if (listener_)
    listener_(loaded);
  return true;
}

void PolicyWatcher::run()
{
  name_this_thread("rg-policy");
  const std::string file_name =
      std::filesystem::is_directory(path_) ? std::string() : std::filesystem::path(path_).filename().string();
  bool pending = false;
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, pending ? kDebounceMs : -1);
    if (ready < 0 && errno != EINTR)
      return;
    if (fds[1].revents & POLLIN)
      return;
    if (ready == 0 && pending) {
      pending = false;
      reload();
      continue;
    }
    if (!(fds[0].revents & POLLIN))
      continue;
    for (;;) {
      const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
      if (n <= 0)
        break;
      for (ssize_t offset = 0; offset < n;) {
        inotify_event event{};
        std::memcpy(&event, buffer + offset, sizeof event);
        const std::string name = event.len ? std::string(buffer + offset + sizeof event) : std::string();
        offset += static_cast<ssize_t>(sizeof event + event.len);
        const bool yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // A Kubernetes ConfigMap volume updates by renaming a new "..data" symlink into place; its
        // visible files are symlinks through ..data and produce no event of their own.
        const bool configmap_swap = name == "..data";
        if (configmap_swap || (file_name.empty() ? (yaml && name.front() != '.') : name == file_name))
          pending = true;
      }
    }
  }
}

}  // namespace riskgate::risk
