// The decision log's promises: every decision one chained line, tampering named by file:line,
// drops counted and written into the chain, rotation and restarts continue the chain.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include <riskgate/audit/decision_log.h>

#include "support/capture.h"
#include "support/decision.h"

namespace fs = std::filesystem;
using namespace riskgate;
using test::read_lines;
using test::read_text;
using test::write_lines;

namespace {

struct TempDir {
  fs::path path;
  TempDir()
  {
    static int n = 0;
    path = fs::temp_directory_path() / ("rgt-audit-" + std::to_string(getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  // A log in this directory, the other options at their defaults.
  audit::LogOptions log_options() const
  {
    audit::LogOptions options;
    options.path = (path / "decisions.jsonl").string();
    return options;
  }
};

// The shared sample, numbered: id, time, score and action follow the id (the tamper cases look for
// "score":2 in the second line).
Decision make_decision(std::uint64_t id)
{
  Decision d = test::sample_decision();
  d.id = id;
  d.time_unix_ns = 1'700'000'000'000'000'000ull + id;
  d.score = static_cast<int>(id % 100);
  d.action = id % 2 ? Action::block : Action::allow;
  return d;
}

std::unique_ptr<audit::DecisionLog> open_log(const audit::LogOptions &options)
{
  auto log = audit::DecisionLog::open(options);
  REQUIRE_MESSAGE(log.ok(), (log.ok() ? "" : log.error()));
  return std::move(*log);
}

// Holds the log's writer inside its first line, so that what is recorded meanwhile queues behind it.
// Lets it go at release() or, should a check have failed first, at the end of the scope.
class WriterHold {
 public:
  explicit WriterHold(audit::DecisionLog &log) : log_(log)
  {
    log_.set_listener([this](std::string_view) {
      if (first_) {
        first_ = false;
        writing_.count_down();
        release_.wait();
      }
    });
  }
  ~WriterHold()
  {
    release();
    log_.set_listener(nullptr);
  }
  void wait_until_writing() { writing_.wait(); }
  void release()
  {
    if (!released_)
      release_.count_down();
    released_ = true;
  }

 private:
  audit::DecisionLog &log_;
  std::latch writing_{1}, release_{1};
  bool first_ = true;
  bool released_ = false;
};

std::string problems_text(const audit::VerifyReport &report)
{
  std::string text;
  for (const auto &p : report.problems)
    text += p.file + ":" + std::to_string(p.line) + ": " + p.message + "\n";
  return text;
}

fs::path write_decisions(const TempDir &dir, int count)
{
  audit::LogOptions options = dir.log_options();
  auto log = open_log(options);
  for (int i = 1; i <= count; ++i) CHECK(log->record(make_decision(static_cast<std::uint64_t>(i))));
  log->flush();
  CHECK(log->stats().written == static_cast<std::uint64_t>(count));
  return options.path;
}

}  // namespace

TEST_CASE("every decision is one JSON line with a fingerprint, never a token, and the chain verifies")
{
  TempDir dir;
  const auto file = write_decisions(dir, 5);
  const auto lines = read_lines(file);
  REQUIRE(lines.size() == 5);
  const auto first = nlohmann::json::parse(lines[0]);
  CHECK(first["kind"] == "decision");
  CHECK(first["token_fingerprint"] == test::sample_decision().token_fingerprint);
  CHECK(first["prev"] == audit::kGenesisHash);
  auto back = audit::decision_from_json(first);
  REQUIRE(back.ok());
  CHECK(back->id == 1);
  CHECK(back->action == Action::block);
  CHECK(back->contributions.size() == 2);
  const auto report = audit::verify_chain({file.string()});
  CHECK_MESSAGE(report.ok(), problems_text(report));
  CHECK(report.lines == 5);
  CHECK_FALSE(report.starts_mid_chain);
}

TEST_CASE("verify names a removed, an edited and a reordered line")
{
  TempDir dir;
  const auto file = write_decisions(dir, 6);
  const auto original = read_lines(file);
  const std::string name = file.string();

  SUBCASE("removed")
  {
    auto lines = original;
    lines.erase(lines.begin() + 2);  // seq 3
    write_lines(file, lines);
    const auto report = audit::verify_chain({name});
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].file == name);
    CHECK(report.problems[0].line == 3);
    CHECK(report.problems[0].message.find("removed") != std::string::npos);
  }
  SUBCASE("edited")
  {
    auto lines = original;
    const auto at = lines[1].find("\"score\":2,");
    REQUIRE(at != std::string::npos);
    lines[1].replace(at, 9, "\"score\":99");
    write_lines(file, lines);
    const auto report = audit::verify_chain({name});
    REQUIRE_FALSE(report.ok());
    CHECK(report.problems[0].line == 2);
    CHECK(report.problems[0].message.find("edited") != std::string::npos);
  }
  SUBCASE("edited and re-hashed")
  {
    auto lines = original;
    auto object = nlohmann::json::parse(lines[2]);
    REQUIRE(object["action"] == "block");
    object["action"] = "allow";
    const auto seq = object["seq"].get<std::uint64_t>();
    const auto prev = object["prev"].get<std::string>();
    object.erase("hash");
    object.erase("seq");
    object.erase("prev");
    lines[2] = audit::seal_line(object, seq, prev, nullptr);
    write_lines(file, lines);
    const auto report = audit::verify_chain({name});
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].line == 3);
    CHECK(report.problems[0].message.find("edited") != std::string::npos);
  }
  SUBCASE("reordered")
  {
    auto lines = original;
    std::swap(lines[1], lines[2]);
    write_lines(file, lines);
    const auto report = audit::verify_chain({name});
    REQUIRE_FALSE(report.ok());
    CHECK(report.problems[0].line == 2);
    CHECK(report.problems[0].message.find("out of order") != std::string::npos);
  }
  SUBCASE("garbage line")
  {
    auto lines = original;
    lines.insert(lines.begin() + 4, "{\"hello\":1}");
    write_lines(file, lines);
    const auto report = audit::verify_chain({name});
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].line == 5);
  }
}

TEST_CASE("a full queue drops, counts, and writes the drop into the chain")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  options.queue_capacity = 4;
  auto log = open_log(options);
  WriterHold hold(*log);
  CHECK(log->record(make_decision(1)));
  hold.wait_until_writing();
  for (std::uint64_t id = 2; id <= 5; ++id) CHECK(log->record(make_decision(id)));
  CHECK_FALSE(log->record(make_decision(6)));
  CHECK_FALSE(log->record(make_decision(7)));
  CHECK(log->stats().dropped == 2);
  hold.release();
  log->flush();
  const auto lines = read_lines(options.path);
  int dropped_lines = 0;
  for (const auto &line : lines) {
    const auto object = nlohmann::json::parse(line);
    if (object["kind"] == "dropped") {
      ++dropped_lines;
      CHECK(object["count"] == 2);
    }
  }
  CHECK(dropped_lines == 1);
  CHECK(lines.size() == 6);
  CHECK(audit::verify_chain({options.path}).ok());
}

TEST_CASE("rotation keeps the chain across files, keeps only `keep` files, and a missing file is a gap")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  options.rotate_bytes = 2000;
  options.keep = 3;
  {
    auto log = open_log(options);
    for (std::uint64_t id = 1; id <= 40; ++id) CHECK(log->record(make_decision(id)));
    log->flush();
    CHECK(log->stats().rotations > 3);
  }
  const auto files = audit::log_files(options.path);
  REQUIRE(files.size() == 4);  // active + 3 kept
  CHECK(files.back() == options.path);
  for (const auto &f : files) CHECK(fs::file_size(f) <= 2000);
  // Any order on the command line: files are ordered by their first seq.
  std::vector<std::string> shuffled(files.rbegin(), files.rend());
  const auto report = audit::verify_chain(shuffled);
  CHECK_MESSAGE(report.ok(), problems_text(report));
  CHECK(report.starts_mid_chain);  // the oldest files were rotated away
  CHECK(report.last_seq == 40);

  std::vector<std::string> without_middle = {files[0], files[2], files[3]};
  const auto gap = audit::verify_chain(without_middle);
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.problems[0].file == files[2]);
  CHECK(gap.problems[0].line == 1);
  CHECK(gap.problems[0].message.find("removed") != std::string::npos);
}

TEST_CASE("a reopened log continues the chain, also after a torn last line")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  {
    auto log = open_log(options);
    log->record(make_decision(1));
    log->record(make_decision(2));
    log->flush();
  }
  {
    auto log = open_log(options);
    rg_event event{};
    event.type = RG_EV_CONNECT_DENY;
    event.reason = RG_R_CONNECT_DENY_IDENTITY;
    event.saddr[10] = event.saddr[11] = 0xff;
    event.saddr[12] = 10;
    event.saddr[15] = 2;
    log->record(event);
    auto action = audit::operator_action_from_json({{"action", "block"},
                                                    {"target", "identity 7"},
                                                    {"ttl_ms", 600000},
                                                    {"reason", "incident 42"},
                                                    {"user", "ops"}});
    REQUIRE(action.ok());
    log->record(std::move(*action));
    log->flush();
  }
  CHECK_FALSE(audit::operator_action_from_json({{"action", "reboot"}, {"target", "x"}}).ok());
  auto lines = read_lines(options.path);
  REQUIRE(lines.size() == 4);
  const auto operator_line = nlohmann::json::parse(lines[3]);
  CHECK(operator_line["kind"] == "operator");
  CHECK(operator_line["reason"] == "incident 42");
  lines.pop_back();
  const auto event = nlohmann::json::parse(lines[2]);
  CHECK(event["kind"] == "event");
  CHECK(event["type"] == "connect_deny");
  CHECK(event["saddr"] == "10.0.0.2");
  CHECK(event["seq"] == 3);
  CHECK(audit::verify_chain({options.path}).ok());

  write_lines(options.path, lines);  // without the operator line: the rest of the test counts three
  {
    std::ofstream torn(options.path, std::ios::app);
    torn << "{\"kind\":\"decision\",\"id\":";
  }
  {
    auto log = open_log(options);
    log->record(make_decision(4));
    log->flush();
  }
  const auto report = audit::verify_chain({options.path});
  REQUIRE(report.problems.size() == 1);
  CHECK(report.problems[0].line == 4);
  CHECK(report.last_seq == 4);
}

TEST_CASE("a writer killed with SIGKILL mid-stream leaves a chain the next process continues")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  options.rotate_bytes = 64 * 1024;
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto log = audit::DecisionLog::open(options);
    if (!log.ok())
      _exit(1);
    for (std::uint64_t id = 1;; ++id) (*log)->record(make_decision(id));
  }
  // Let it write (and rotate) for a while, then kill it without any chance to flush.
  for (int i = 0; i < 200 && audit::log_files(options.path).size() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  REQUIRE(audit::log_files(options.path).size() >= 2);
  {
    auto log = open_log(options);
    log->record(make_decision(1'000'000));
    log->flush();
  }
  const auto report = audit::verify_chain(audit::log_files(options.path));
  // SIGKILL can stop a batch's write() between two pages and leave a torn line: it is closed off,
  // verify names it and nothing else, and the chain runs on across it (docs/architecture.md).
  const bool torn_line_only =
      report.problems.size() == 1 && report.problems[0].message.starts_with("not a riskgate audit line");
  CHECK_MESSAGE((report.ok() || torn_line_only), problems_text(report));
  const auto lines = read_lines(options.path);
  CHECK(nlohmann::json::parse(lines.back())["id"] == 1'000'000);
}

TEST_CASE("a write the disk cuts short loses only the lines that did not reach it; the chain goes on")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  constexpr std::uint64_t kRecorded = 40;
  // A file size limit stands in for a full disk: the write that crosses it is cut short, later ones
  // fail with EFBIG. In a child, so the limit stays there.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{5000, 5000};
    setrlimit(RLIMIT_FSIZE, &limit);
    auto log = audit::DecisionLog::open(options);
    if (!log.ok())
      _exit(1);
    for (std::uint64_t id = 1; id <= kRecorded; ++id) (*log)->record(make_decision(id));
    (*log)->flush();
    const auto stats = (*log)->stats();
    _exit(stats.written + stats.write_errors == kRecorded && stats.write_errors > 0 ? 0 : 2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(fs::file_size(options.path) == 5000);
  const auto whole = read_lines(options.path).size() - 1;  // the last line is torn
  {
    auto log = open_log(options);
    log->record(make_decision(1000));
    log->flush();
  }
  const auto report = audit::verify_chain({options.path});
  REQUIRE(report.problems.size() == 1);  // the torn line, and nothing else
  CHECK(report.problems[0].line == whole + 1);
  CHECK(report.last_seq == whole + 1);
  const auto lines = read_lines(options.path);
  CHECK(nlohmann::json::parse(lines.back())["id"] == 1000);
}

TEST_CASE("a burst far beyond what the writer keeps up with is queued, not dropped")
{
  TempDir dir;
  const audit::LogOptions options = dir.log_options();
  auto log = open_log(options);
  WriterHold hold(*log);
  CHECK(log->record(make_decision(1)));
  hold.wait_until_writing();
  // Several times the queue's ring while the writer is held: the rest waits in the spill.
  constexpr std::uint64_t kBurst = 5000;
  std::uint64_t refused = 0;
  for (std::uint64_t id = 2; id <= kBurst; ++id) refused += log->record(make_decision(id)) ? 0 : 1;
  hold.release();
  log->flush();
  CHECK(refused == 0);
  CHECK(log->stats().dropped == 0);
  // What an operator sees: the writer fell behind, and nothing was lost.
  metrics::Registry registry;
  audit::DecisionMetrics decision_metrics(registry);
  decision_metrics.watch(*log);
  const std::string exposed = registry.expose();
  CHECK(exposed.find("riskgate_audit_dropped_total 0\n") != std::string::npos);
  CHECK(exposed.find("riskgate_audit_spilled_total " + std::to_string(log->stats().spilled) + "\n") !=
        std::string::npos);
  CHECK(log->stats().spilled == kBurst - 1 - 1024);  // all but the one being written and the ring's 1024
  const auto lines = read_lines(options.path);
  REQUIRE(lines.size() == kBurst);
  for (std::uint64_t i = 0; i < kBurst; ++i) CHECK(nlohmann::json::parse(lines[i])["id"] == i + 1);
  CHECK(audit::verify_chain({options.path}).ok());
}

// Context switches of this process's decision log writer (its thread is named rg-audit).
std::uint64_t writer_switches()
{
  std::uint64_t total = 0;
  int writers = 0;
  for (const auto &task : fs::directory_iterator("/proc/self/task")) {
    if (read_text((task.path() / "comm").string()) != "rg-audit\n")
      continue;
    ++writers;
    std::istringstream status(read_text((task.path() / "status").string()));
    for (std::string line; std::getline(status, line);)
      if (line.find("ctxt_switches:") != std::string::npos)
        total += std::stoull(line.substr(line.find(':') + 1));
  }
  REQUIRE(writers == 1);
  return total;
}

TEST_CASE("an idle writer sleeps: a few wake-ups a second, not one per 2 ms nap")
{
  TempDir dir;
  auto log = open_log(dir.log_options());
  CHECK(log->record(make_decision(1)));
  log->flush();
  // Past its ten empty naps the writer sleeps until a producer wakes it, or 50 ms at the most.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::uint64_t before = writer_switches();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(writer_switches() - before <= 40);  // about 20; napping on would be about 500
}

TEST_CASE("flush returns while producers keep recording (riskgated stopping under load)")
{
  TempDir dir;
  audit::LogOptions options = dir.log_options();
  options.queue_capacity = 1024;
  auto log = open_log(options);
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (std::uint64_t id = 1; !stop.load(); ++id) log->record(make_decision(id));
  });
  while (log->stats().written < 2000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The queue never runs empty here; flush must still come back once what it covers is written.
  auto flushed = std::async(std::launch::async, [&] {
    const auto queued = log->stats().queued;
    log->flush();
    return log->stats().written + log->stats().write_errors >= queued;
  });
  const bool returned = flushed.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  stop.store(true);
  producer.join();
  REQUIRE(returned);
  CHECK(flushed.get());
}
