// Decision-to-enforcement latency: from the moment the risk engine's Decision (action block, pair
// scope) is handed to enforcement, through block_request() and MapEnforcer::block() (de-duplication
// lookup + map write), to the kernel refusing the workload's next message (send EACCES on an open
// connection) and next connect (EPERM). Beside it, in the same run, the same refusal after a raw
// map write (the datapath's floor) and the enforcer call alone; connects are probed twice, on
// loopback (a socket per try) and to an unroutable address from a private namespace (one socket,
// no handshake), as bench/block_latency_bench does. Target: p99 under 100 us.
// Usage (root): build/bench/bench_enforce_latency_bench [samples]
#include "block_lab.h"
#include <riskgate/enforce/map_enforcer.h>

using namespace riskgate;
using namespace riskgate::bench::blocklab;

int main(int argc, char **argv)
{
  const int samples = argc > 1 ? std::atoi(argv[1]) : 100;
  const auto lab = Lab::start("enforcelat");
  if (!lab)
    return 1;
  kernel::PinnedMaps &maps = lab->maps();
  enforce::Options options;
  options.manual_grace = std::chrono::milliseconds(0);
  enforce::MapEnforcer enforcer(maps, options);

  Decision decision;
  decision.action = Action::block;
  decision.block_scope = BlockScope::pair;
  decision.source_identity = kClient;
  decision.destination_identity = kServer;
  decision.block_ttl_ms = 600'000;
  sockaddr_storage peer{};

  const auto decide_and_block = [&] {
    ++decision.id;
    auto request = block_request(decision, peer, 0);
    if (!request || !enforcer.block(*request).ok())
      std::exit(1);
  };
  const auto unblock = [&] { (void)maps.pair_blocks().remove({kClient, kServer}); };

  // The enforcer call alone (new block each time: lookup + write), and a repeat (lookup only).
  std::vector<double> call_us, repeat_us;
  for (int i = 0; i < 1000; ++i) {
    std::uint64_t t0 = bench::now_ns();
    decide_and_block();
    call_us.push_back(static_cast<double>(bench::now_ns() - t0) / 1000.0);
    t0 = bench::now_ns();
    decide_and_block();
    repeat_us.push_back(static_cast<double>(bench::now_ns() - t0) / 1000.0);
    unblock();
  }

  const auto raw_block = [&] {
    if (!maps.pair_blocks().put({kClient, kServer}, kernel::block_value(std::chrono::minutes(10), 1)).ok())
      std::exit(1);
  };
  const Latencies raw_msg = measure(lab->tree(), true, lab->port(), samples, raw_block, unblock);
  const Latencies msg = measure(lab->tree(), true, lab->port(), samples, decide_and_block, unblock);
  const Latencies raw_conn = measure(lab->tree(), false, lab->port(), samples, raw_block, unblock);
  const Latencies conn = measure(lab->tree(), false, lab->port(), samples, decide_and_block, unblock);
  // The same connects to an unroutable address in the lab's private namespace: the loop reuses its
  // socket, so its tail is the enforcement path's, not socket churn on loopback (block_lab.h).
  const Latencies raw_conn_quiet =
      measure(lab->tree(), false, lab->port(), samples, raw_block, unblock, lab->unroutable_netns());
  const Latencies conn_quiet =
      measure(lab->tree(), false, lab->port(), samples, decide_and_block, unblock, lab->unroutable_netns());

  std::printf(
      "enforce_latency_bench: decisions enforced on CPU 0, workload looping on CPU 1, %d samples each\n",
      samples);
  std::printf("  enforcer call, new block     p50 %6.1f us  p99 %6.1f us\n", bench::percentile(call_us, 50),
              bench::percentile(call_us, 99));
  std::printf("  enforcer call, repeat (dedup) p50 %5.1f us  p99 %6.1f us\n",
              bench::percentile(repeat_us, 50), bench::percentile(repeat_us, 99));
  print("raw write -> send EACCES", raw_msg);
  print("decision -> send EACCES", msg);
  print("raw write -> connect EPERM", raw_conn);
  print("decision -> connect EPERM", conn);
  print("raw write -> connect, unroutable", raw_conn_quiet);
  print("decision -> connect, unroutable", conn_quiet);
  std::printf("  (target: decision to refusal, p99 under 100 us)\n");
  return 0;
}
