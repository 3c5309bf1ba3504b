// Block latency: time from issuing the block's map write to the first refused
// operation of a workload that keeps trying, for an established connection (next send() fails with
// EACCES) and for new connections (connect() fails with EPERM). The workload runs on CPU 1, the
// writer on CPU 0; the workload's own loop period is printed beside it (the resolution of the
// measurement; connects are non-blocking, so the loop does not wait for handshakes; a third run
// connects to an unroutable address in a private namespace, where a loop iteration costs a few
// microseconds instead of a loopback handshake). Usage (root):
// build/bench/bench_block_latency_bench [samples]
#include "block_lab.h"

using namespace riskgate;
using namespace riskgate::bench::blocklab;

int main(int argc, char **argv)
{
  const int samples = argc > 1 ? std::atoi(argv[1]) : 100;
  auto lab = Lab::start("blocklat");
  if (!lab)
    return 1;
  kernel::PinnedMaps &maps = lab->maps();

  // The write itself, measured in the same run: one bpf(BPF_MAP_UPDATE_ELEM) of a pair block.
  std::vector<double> write_us;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    (void)maps.pair_blocks().put({kClient + 1000, kServer}, kernel::block_value(0ms, 1));
    write_us.push_back(static_cast<double>(bench::now_ns() - t0) / 1000.0);
  }
  (void)maps.pair_blocks().remove({kClient + 1000, kServer});

  const auto block = [&] {
    if (!maps.pair_blocks().put({kClient, kServer}, kernel::block_value(0ms, 1)).ok())
      std::exit(1);
  };
  const auto unblock = [&] { (void)maps.pair_blocks().remove({kClient, kServer}); };
  const Latencies msg = measure(lab->tree(), true, lab->port(), samples, block, unblock);
  const Latencies conn = measure(lab->tree(), false, lab->port(), samples, block, unblock);
  const Latencies unroutable =
      measure(lab->tree(), false, lab->port(), samples, block, unblock, lab->unroutable_netns());
  std::printf(
      "block_latency_bench: pair block written on CPU 0, workload looping on CPU 1, %d samples each\n",
      samples);
  std::printf("  map write (the peer)         p50 %6.1f us  p99 %6.1f us\n", bench::percentile(write_us, 50),
              bench::percentile(write_us, 99));
  print("open connection: send EACCES", msg);
  print("new connection: connect EPERM", conn);
  print("same, unroutable destination", unroutable);
  std::printf("  (target: under 100 us)\n");
  return 0;
}
