// The audit trail: every decision and every kernel enforcement event as one JSON line, hash-chained
// so that `riskgatectl audit verify` proves nothing was removed, reordered or edited.
//
// Line format: one JSON object, then a newline; "hash" is always the last key:
//   {"kind":"decision"|"event"|"operator"|"dropped",...fields...,"prev":"<hex>","seq":N,"hash":"<hex>"}
// `hash` is SHA-256 over the line's bytes up to (not including) `,"hash":`; `prev` is the previous
// line's `hash` (64 zeros for the first line ever). `seq` counts lines from 1 across rotations, so the
// first line of a file chains to the last line of the previous file.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <riskgate/common/paths.h>
#include <riskgate/abi.h>
#include <riskgate/common/decision.h>
#include <riskgate/admin/metrics.h>
#include <riskgate/common/result.h>

namespace riskgate::audit {

// An operator's change of kernel state (riskgatectl block/unblock), logged in the same chain.
struct OperatorAction {
  std::string action;  // "block", "unblock"
  std::string target;  // describe(BlockTarget): "identity 7", "ip 10.0.0.0/24"
  std::uint64_t ttl_ms = 0;
  std::string reason;
  std::string user;  // who ran riskgatectl (SUDO_USER, else the uid)
  std::uint64_t time_unix_ns = 0;
};

// ---- the JSON form of a decision (shared by the log, the admin socket and riskgatectl) ----
nlohmann::json to_json(const Decision &decision);
Result<Decision> decision_from_json(const nlohmann::json &object);
nlohmann::json to_json(const rg_event &event);
nlohmann::json to_json(const OperatorAction &action);
Result<OperatorAction> operator_action_from_json(const nlohmann::json &object);
Result<Action> parse_action(const std::string &name);
Result<BlockScope> parse_scope(const std::string &name);

// ---- the chain ----
inline constexpr const char *kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// A line's hash: SHA-256 of its bytes before `,"hash":`, as 64 lowercase hex digits.
using ChainHash = std::array<char, 64>;

// Seals `entry` (an object without seq/prev/hash) into a chained line, without the newline.
std::string seal_line(nlohmann::json entry, std::uint64_t seq, const std::string &prev_hash,
                      std::string *hash_out);
// The same for an object already serialised into `out` from `body_start` on, without its closing
// brace: appends "prev" and "seq", hashes the body, appends "hash" and the brace. In place, so the
// decision writer seals each line where it batches them.
void seal_body(std::string &out, std::size_t body_start, std::uint64_t seq, std::string_view prev_hash,
               ChainHash &hash);
// seal_body for a body that is the whole string.
void seal_body(std::string &body, std::uint64_t seq, const std::string &prev_hash, std::string *hash_out);

// The decision as seal_body expects it: the object of to_json() plus "kind":"decision", written
// directly (no JSON tree: this runs once per request), invalid UTF-8 replaced by U+FFFD.
void append_decision_body(std::string &out, const Decision &decision);

struct VerifyProblem {
  std::string file;
  std::size_t line = 0;  // 1-based; 0 = about the file as a whole
  std::string message;
};

struct VerifyReport {
  std::uint64_t lines = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::string last_hash;
  bool starts_mid_chain = false;  // the oldest line given chains to a line not given (rotated away)
  std::vector<VerifyProblem> problems;
  bool ok() const { return problems.empty(); }
};

// Verifies the files as one chain. They are put in order by their first `seq`, so a shell glob
// (decisions.jsonl*) works; a missing file in the middle shows as a gap.
VerifyReport verify_chain(const std::vector<std::string> &files);

// ---- the log writer ----
struct LogOptions {
  std::string path = paths::kAuditLog;
  std::uint64_t rotate_bytes = 100ull << 20;  // rotate when the active file would exceed this
  unsigned keep = 10;                         // rotated files kept: path.1 (newest) .. path.<keep>
  std::size_t queue_capacity = 65536;         // decisions waiting for the writer, at most (then dropped)
};

// The files of a log, oldest first (path.<keep> .. path.1, path), those that exist.
std::vector<std::string> log_files(const std::string &path);

struct LogStats {
  std::uint64_t queued = 0;   // accepted by record()
  std::uint64_t written = 0;  // lines on disk
  std::uint64_t dropped = 0;  // refused because the queue was full (never silent: also logged)
  std::uint64_t spilled = 0;  // queued beyond the queue's ring while the writer was behind
  std::uint64_t write_errors = 0;
  std::uint64_t rotations = 0;
};

class DecisionLog {
 public:
  // Opens (creating directories) and continues the chain from the newest existing line.
  static Result<std::unique_ptr<DecisionLog>> open(const LogOptions &options);
  virtual ~DecisionLog() = default;

  // Hot path: lock-free, never blocks; false when the queue is full (counted as dropped).
  virtual bool record(const Decision &decision) = 0;
  virtual bool record(const rg_event &event) = 0;
  virtual bool record(OperatorAction action) = 0;
  // Blocks until every entry recorded before the call is written (shutdown, tests).
  virtual void flush() = 0;
  virtual LogStats stats() const = 0;
  // Called on the writer thread with each line written (the admin socket's live stream).
  virtual void set_listener(std::function<void(std::string_view line)> listener) = 0;
};

// ---- the decision metrics (names documented in docs/operations.md) ----
class DecisionMetrics {
 public:
  explicit DecisionMetrics(metrics::Registry &registry);
  // Per request, from any worker: requests by service and action, decision latency, score, signals.
  void observe(const Decision &decision);
  void policy_loaded(const std::string &version, bool ok);
  void upstream_health(const std::string &upstream, bool healthy);
  // Exposes the log's own counters (lines, queue drops, write errors) at every scrape.
  void watch(const DecisionLog &log);

 private:
  metrics::Registry &registry_;
  metrics::Family<metrics::Counter> &requests_;
  metrics::Histogram &latency_;
  metrics::Histogram &score_;
  metrics::Family<metrics::Counter> &signals_;
  metrics::Family<metrics::Gauge> &policy_;
  metrics::Family<metrics::Counter> &reloads_;
  metrics::Family<metrics::Gauge> &upstream_;
  std::mutex policy_mutex_;
  std::string policy_version_;
};

}  // namespace riskgate::audit
