// The decision queue's promises: nothing lost below its capacity, each producer's values in the order
// it pushed them, the spill used only while the consumer is behind.
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "audit/mpsc_queue.h"

using riskgate::audit::SpillingMpscQueue;

namespace {

using Tagged = std::pair<unsigned, unsigned>;  // producer, sequence number

}  // namespace

TEST_CASE("spilling queue: producers racing a slow consumer keep their order and lose nothing")
{
  constexpr unsigned kProducers = 4, kPerProducer = 20000;
  SpillingMpscQueue<Tagged> queue(16, 1 << 20);
  std::atomic<unsigned> refused{0};
  std::vector<std::thread> producers;
  for (unsigned p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (unsigned i = 0; i < kPerProducer; ++i)
        if (!queue.push(Tagged{p, i}))
          refused.fetch_add(1);
    });

  std::array<unsigned, kProducers> next{};
  unsigned consumed = 0, out_of_order = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (consumed < kProducers * kPerProducer && std::chrono::steady_clock::now() < deadline) {
    const bool got = queue.consume([&](const Tagged &t) {
      if (t.second != next[t.first])
        ++out_of_order;
      next[t.first] = t.second + 1;
    });
    if (got && ++consumed % 2000 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // fall behind: the ring fills
  }
  for (auto &t : producers) t.join();
  CHECK(refused == 0);
  CHECK(consumed == kProducers * kPerProducer);
  CHECK(out_of_order == 0);
  CHECK(queue.spilled() > 0);
  CHECK_FALSE(queue.consume([](const Tagged &) {}));
}

TEST_CASE("spilling queue: full at ring plus spill, and back to the ring once drained")
{
  SpillingMpscQueue<unsigned> queue(4, 10);
  CHECK(queue.capacity() == 10);
  for (unsigned i = 0; i < 10; ++i) CHECK(queue.push(i));
  CHECK_FALSE(queue.push(10u));
  CHECK(queue.spilled() == 6);
  std::vector<unsigned> seen;
  while (queue.consume([&](unsigned v) { seen.push_back(v); }))
    ;
  CHECK(seen == std::vector<unsigned>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(queue.push(11u));
  CHECK(queue.spilled() == 6);  // the ring takes it again
}
