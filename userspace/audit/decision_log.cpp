// The decision log writer: producers push into a bounded lock-free queue; one thread serializes,
// chains, writes and rotates. Nothing here runs on the proxy's workers except record().
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <variant>

#include <fmt/format.h>

#include <riskgate/audit/decision_log.h>
#include <riskgate/common/errors.h>
#include <riskgate/common/thread_name.h>

#include "mpsc_queue.h"

namespace riskgate::audit {

namespace {

namespace fs = std::filesystem;

using Entry = std::variant<Decision, rg_event, OperatorAction>;

struct ChainState {
  std::uint64_t seq = 0;
  std::string hash = kGenesisHash;
};

// The newest complete line of a file, read from its end. A torn final line (no newline, a crash
// mid-write) is ignored: the chain continues from the last complete one.
Result<std::string> last_line(const std::string &file)
{
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(fmt::format("open {}: {}", file, errno_text()));
  const std::unique_ptr<int, void (*)(int *)> closer(new int(fd), [](int *p) {
    ::close(*p);
    delete p;
  });
  struct stat st {};
  fstat(fd, &st);
  std::string tail;
  for (off_t window = 64 * 1024;; window *= 4) {
    const off_t start = st.st_size > window ? st.st_size - window : 0;
    tail.resize(static_cast<std::size_t>(st.st_size - start));
    if (pread(fd, tail.data(), tail.size(), start) != static_cast<ssize_t>(tail.size()))
      return make_error(fmt::format("read {}: {}", file, errno_text()));
    const auto last_newline = tail.rfind('\n');
    if (last_newline == std::string::npos) {
      if (start == 0)
        return std::string();
      continue;
    }
    const auto before = last_newline == 0 ? std::string::npos : tail.rfind('\n', last_newline - 1);
    if (before != std::string::npos || start == 0) {
      const std::size_t from = before == std::string::npos ? 0 : before + 1;
      return tail.substr(from, last_newline - from);
    }
  }
}

Result<ChainState> recover_chain(const std::string &path)
{
  const auto files = log_files(path);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    auto line = last_line(*it);
    if (!line)
      return make_error(line.error());
    if (line->empty())
      continue;
    const auto object = nlohmann::json::parse(*line, nullptr, false);
    if (object.is_discarded() || !object.contains("seq") || !object.contains("hash"))
      return make_error(
          fmt::format("{}: the last line is not a riskgate audit line, so the chain cannot "
                      "continue: move the file away (after `riskgatectl audit verify`)",
                      *it));
    return ChainState{object["seq"].get<std::uint64_t>(), object["hash"].get<std::string>()};
  }
  return ChainState{};
}

class FileDecisionLog final : public DecisionLog {
 public:
  FileDecisionLog(const LogOptions &options, ChainState chain, int fd, std::uint64_t size)
      : options_(options),
        queue_(kRingCells, options.queue_capacity),
        chain_(std::move(chain)),
        fd_(fd),
        size_(size)
  {
    thread_ = std::thread([this] { run(); });
  }

  ~FileDecisionLog() override
  {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    ::close(fd_);
  }

  // A decision is copied into its queue cell: no temporary, so the only allocations are those of
  // its strings that do not fit in place.
  bool record(const Decision &decision) override { return push(decision); }
  bool record(const rg_event &event) override { return push(event); }
  bool record(OperatorAction action) override { return push(std::move(action)); }

  void flush() override
  {
    const std::uint64_t target = queued_.load();
    std::unique_lock lock(mutex_);
    wake_.notify_one();
    flushed_.wait(lock, [&] { return processed_.load() >= target; });
  }

  LogStats stats() const override
  {
    return {queued_.load(),   written_.load(),      dropped_.load(),
            queue_.spilled(), write_errors_.load(), rotations_.load()};
  }

  void set_listener(std::function<void(std::string_view line)> listener) override
  {
    std::lock_guard lock(listener_mutex_);
    listener_ = std::move(listener);
  }

 private:
  // A sealed line in the batch: where it ends, and the chain state it leaves.
  struct BatchLine {
    std::size_t end = 0;
    std::uint64_t seq = 0;
    ChainHash hash{};
    std::string_view hash_view() const { return {hash.data(), hash.size()}; }
  };

  template <class Value>
  bool push(Value &&value)
  {
    if (!queue_.push(std::forward<Value>(value))) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queued_.fetch_add(1);
    // Only a writer in its deep sleep needs a wake-up; under load it naps between batches and
    // finds the queue full of work, so the workers make no futex call per decision.
    if (sleeping_.load())
      wake_.notify_one();
    return true;
  }

  // The writer drains the queue in batches: every line is sealed onto the chain in order, and the
  // batch goes to the file in one write(). Between batches it naps for kBatchInterval so the next
  // batch gathers (a line reaches the file at most that much later); after kIdleNaps empty naps it
  // sleeps until a producer wakes it, so an idle agent does not tick.
  static constexpr auto kBatchInterval = std::chrono::milliseconds(2);
  static constexpr unsigned kIdleNaps = 10;
  static constexpr std::size_t kBatchLines = 512;
  // The queue's ring: two batches' worth, enough for a writer that keeps up (about 450 KB); a burst
  // beyond it spills, up to LogOptions::queue_capacity.
  static constexpr std::size_t kRingCells = 1024;

  void run()
  {
    name_this_thread("rg-audit");
    unsigned empty_naps = 0;
    for (;;) {
      const std::size_t lines = write_batch();
      std::unique_lock lock(mutex_);
      if (lines > 0 || processed_.load() < queued_.load())
        empty_naps = 0;
      flushed_.notify_all();
      if (lines == kBatchLines)
        continue;  // more is waiting: no nap
      if (stopping_ && processed_.load() >= queued_.load())
        break;
      if (++empty_naps <= kIdleNaps) {
        wake_.wait_for(lock, kBatchInterval);
        continue;
      }
      sleeping_.store(true);
      // A producer that pushed before it saw sleeping_ did not notify: look once more, and bound a
      // lost wake-up by the timeout.
      if (processed_.load() == queued_.load() && !stopping_)
        wake_.wait_for(lock, std::chrono::milliseconds(50));
      sleeping_.store(false);  // and back to naps only once a batch finds work
    }
  }

  // Pops up to kBatchLines entries, seals them and writes them in one write(). Returns the number
  // of entries taken off the queue.
  std::size_t write_batch()
  {
    std::size_t taken = 0;
    append_drops();
    while (taken < kBatchLines && queue_.consume([this](const Entry &entry) { append_entry(entry); }))
      ++taken;
    flush_batch();
    processed_.fetch_add(taken);
    return taken;
  }

  // Drops are written into the chain itself, so a reader sees where and how many were lost.
  void append_drops()
  {
    const std::uint64_t dropped = dropped_.load();
    if (dropped == dropped_logged_)
      return;
    append_object({{"kind", "dropped"}, {"count", dropped - dropped_logged_}, {"total", dropped}});
    dropped_logged_ = dropped;
  }

  // Serialises the entry at the end of the batch and seals it there.
  void append_entry(const Entry &entry)
  {
    const std::size_t start = batch_.size();
    if (const auto *decision = std::get_if<Decision>(&entry)) {
      append_decision_body(batch_, *decision);
      seal_appended(start);
      return;
    }
    nlohmann::json object = std::visit([](const auto &value) { return to_json(value); }, entry);
    object["kind"] = std::holds_alternative<rg_event>(entry) ? "event" : "operator";
    append_object(std::move(object));
  }

  void append_object(nlohmann::json object)
  {
    const std::size_t start = batch_.size();
    batch_ += object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    batch_.pop_back();  // the closing brace: seal_body puts prev, seq and hash inside
    seal_appended(start);
  }

  // Seals the body at batch_[start..] (an object without its closing brace) onto the batch's end
  // of the chain. A line that would overflow the active file first sends the batch before it and
  // rotates, and is sealed again onto the chain as that write left it.
  void seal_appended(std::size_t start)
  {
    const std::size_t body_end = batch_.size();
    BatchLine line = seal_at(start);
    if (size_ + start > 0 && size_ + batch_.size() > options_.rotate_bytes) {
      std::string body = batch_.substr(start, body_end - start);
      batch_.resize(start);
      flush_batch();
      if (size_ > 0)
        rotate();
      batch_ += body;  // flush_batch emptied it
      line = seal_at(0);
    }
    marks_.push_back(line);
  }

  BatchLine seal_at(std::size_t start)
  {
    BatchLine line;
    line.seq = (marks_.empty() ? chain_.seq : marks_.back().seq) + 1;
    const std::string_view prev = marks_.empty() ? std::string_view(chain_.hash) : marks_.back().hash_view();
    seal_body(batch_, start, line.seq, prev, line.hash);
    batch_ += '\n';
    line.end = batch_.size();
    return line;
  }

  // Writes the batch. The chain advances through the lines that reached the file whole; a failed
  // or short write loses the rest, counted and said, and the next line chains to the last whole one
  // (verify names the torn line a short write leaves).
  void flush_batch()
  {
    if (batch_.empty())
      return;
    const ssize_t wrote = ::write(fd_, batch_.data(), batch_.size());
    const std::size_t on_disk = wrote > 0 ? static_cast<std::size_t>(wrote) : 0;
    std::size_t whole = 0;
    while (whole < marks_.size() && marks_[whole].end <= on_disk) ++whole;
    if (whole > 0) {
      chain_.seq = marks_[whole - 1].seq;
      chain_.hash.assign(marks_[whole - 1].hash_view());
      written_.fetch_add(whole);
    }
    size_ += on_disk;
    if (whole < marks_.size()) {
      const std::size_t lost = marks_.size() - whole;
      write_errors_.fetch_add(lost);
      fmt::print(stderr, "riskgated: audit log {}: write failed ({}); {} line(s) lost so far\n",
                 options_.path, wrote < 0 ? errno_text() : "short write", write_errors_.load());
    }
    {
      std::lock_guard lock(listener_mutex_);
      if (listener_) {
        std::size_t begin = 0;
        for (std::size_t i = 0; i < whole; ++i) {
          listener_(std::string_view(batch_).substr(begin, marks_[i].end - begin - 1));
          begin = marks_[i].end;
        }
      }
    }
    batch_.clear();
    marks_.clear();
  }

  void rotate()
  {
    std::error_code ec;
    const std::string &path = options_.path;
    if (options_.keep == 0) {
      fs::remove(path, ec);
    } else {
      for (unsigned i = options_.keep; i > 1; --i)
        if (fs::exists(fmt::format("{}.{}", path, i - 1), ec))
          fs::rename(fmt::format("{}.{}", path, i - 1), fmt::format("{}.{}", path, i), ec);
      fs::rename(path, path + ".1", ec);
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      write_errors_.fetch_add(1);
      fmt::print(stderr, "riskgated: audit log rotation: open {}: {}; still writing to the rotated file\n",
                 path, errno_text());
      return;
    }
    ::close(fd_);
    fd_ = fd;
    size_ = 0;
    rotations_.fetch_add(1);
  }

  const LogOptions options_;
  SpillingMpscQueue<Entry> queue_;
  ChainState chain_;
  int fd_;
  std::uint64_t size_;
  std::uint64_t dropped_logged_ = 0;
  // Writer thread only, reused: the batch of sealed lines not yet written, and their marks.
  std::string batch_;
  std::vector<BatchLine> marks_;

  std::atomic<std::uint64_t> queued_{0}, processed_{0}, written_{0}, dropped_{0}, write_errors_{0},
      rotations_{0};
  std::atomic<bool> sleeping_{false};
  std::mutex mutex_;
  std::condition_variable wake_, flushed_;
  bool stopping_ = false;
  std::mutex listener_mutex_;
  std::function<void(std::string_view)> listener_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<DecisionLog>> DecisionLog::open(const LogOptions &options)
{
  std::error_code ec;
  const fs::path path(options.path);
  if (path.has_parent_path())
    fs::create_directories(path.parent_path(), ec);
  if (ec)
    return make_error(fmt::format("audit log: create {}: {}", path.parent_path().string(), ec.message()));
  auto chain = recover_chain(options.path);
  if (!chain)
    return make_error(fmt::format("audit log: {}", chain.error()));
  const int fd = ::open(options.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    return make_error(fmt::format("audit log: open {}: {}", options.path, errno_text()));
  struct stat st {};
  fstat(fd, &st);
  // A torn last line (crash mid-write) is closed off so the next line starts clean; verify names it.
  if (st.st_size > 0) {
    char last = '\n';
    if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' && ::write(fd, "\n", 1) == 1)
      st.st_size += 1;
  }
  return std::unique_ptr<DecisionLog>(
      new FileDecisionLog(options, std::move(*chain), fd, static_cast<std::uint64_t>(st.st_size)));
}

}  // namespace riskgate::audit
