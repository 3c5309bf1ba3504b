// Cost of the decision log per decision: sealing one line (JSON + SHA-256 chain), and the whole
// writer path (record on the hot path, the writer thread's serialise, hash and write) per decision.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <filesystem>

#include <riskgate/audit/decision_log.h>

#include "support/decision.h"  // the decision the audit tests check

using namespace riskgate;

namespace {

// The writer's path: the decision serialised directly, then sealed.
void BM_SealDecisionLine(benchmark::State &state)
{
  const Decision d = test::sample_decision();
  std::string prev(64, '0');
  std::string line;
  std::uint64_t seq = 1;
  for (auto _ : state) {
    line.clear();
    audit::append_decision_body(line, d);
    std::string hash;
    audit::seal_body(line, seq++, prev, &hash);
    benchmark::DoNotOptimize(line.data());
  }
}
BENCHMARK(BM_SealDecisionLine);

// Its peer: the same line through a JSON tree (to_json + dump), as the CLI and admin socket build it.
void BM_SealDecisionLineViaJsonTree(benchmark::State &state)
{
  const Decision d = test::sample_decision();
  std::string prev(64, '0');
  std::uint64_t seq = 1;
  for (auto _ : state) {
    auto object = audit::to_json(d);
    object["kind"] = "decision";
    std::string hash;
    benchmark::DoNotOptimize(audit::seal_line(std::move(object), seq++, prev, &hash));
  }
}
BENCHMARK(BM_SealDecisionLineViaJsonTree);

// Records a batch of decisions and waits until they are on disk: the writer's cost per decision.
void BM_LogThroughput(benchmark::State &state)
{
  const std::string dir = "/dev/shm/rgt-audit-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  audit::LogOptions options;
  options.path = dir + "/decisions.jsonl";
  options.rotate_bytes = 1ull << 30;
  auto log = audit::DecisionLog::open(options);
  if (!log.ok()) {
    state.SkipWithError(log.error().c_str());
    return;
  }
  const Decision d = test::sample_decision();
  constexpr int kBatch = 1000;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) (*log)->record(d);
    (*log)->flush();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  log->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_LogThroughput)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
