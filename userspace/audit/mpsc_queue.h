// Queues from the proxy's workers (many producers) to one consumer thread.
//
// MpscQueue: bounded and lock-free (Dmitry Vyukov's array queue). push() never blocks and never
// allocates; it fails when the queue is full, and the caller counts that.
//
// SpillingMpscQueue: a small MpscQueue for the steady state plus a spill list for bursts. The ring's
// cells are reused all the time, so they stay in cache and are all the memory an agent keeps while
// the consumer keeps up; the spill grows only while the consumer is behind, up to the total
// capacity, and is freed when it drains. Each producer's values are consumed in the order it pushed
// them.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace riskgate::audit {

template <class T>
class MpscQueue {
 public:
  explicit MpscQueue(std::size_t capacity)
      : mask_(std::bit_ceil(capacity < 2 ? std::size_t{2} : capacity) - 1), cells_(new Cell[mask_ + 1])
  {
    for (std::size_t i = 0; i <= mask_; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }

  std::size_t capacity() const { return mask_ + 1; }

  // Assigns into the cell, so a T built from its parts (a variant's alternative) needs no temporary.
  // A failed push leaves `value` untouched: it is assigned only once a cell is taken.
  template <class Value>
  bool push(Value &&value)
  {
    std::size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell &cell = cells_[pos & mask_];
      const std::size_t seq = cell.sequence.load(std::memory_order_acquire);
      const auto diff = static_cast<std::ptrdiff_t>(seq) - static_cast<std::ptrdiff_t>(pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          cell.value = std::forward<Value>(value);
          cell.sequence.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // full: the consumer has not freed this cell yet
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Single consumer: hands the oldest value to `use` where it lies, then resets the cell (a cell
  // keeps nothing of a consumed value); false when the queue is empty.
  template <class Use>
  bool consume(Use &&use)
  {
    Cell &cell = cells_[head_ & mask_];
    const std::size_t seq = cell.sequence.load(std::memory_order_acquire);
    if (seq != head_ + 1)
      return false;
    use(static_cast<const T &>(cell.value));
    cell.value = T{};
    cell.sequence.store(head_ + mask_ + 1, std::memory_order_release);
    ++head_;
    return true;
  }

  // Consumer only: every position a producer has taken has been consumed (none is being written).
  bool drained() const { return tail_.load(std::memory_order_acquire) == head_; }

 private:
  struct Cell {
    std::atomic<std::size_t> sequence{0};
    T value{};
  };
  const std::size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  alignas(64) std::atomic<std::size_t> tail_{0};
  alignas(64) std::size_t head_ = 0;
};

template <class T>
class SpillingMpscQueue {
 public:
  // `ring` cells (rounded up to a power of two, at most `capacity`), the rest of `capacity` spills.
  SpillingMpscQueue(std::size_t ring, std::size_t capacity)
      : ring_(std::min(ring, capacity)), spill_capacity_(capacity - std::min(capacity, ring_.capacity()))
  {
  }

  std::size_t capacity() const { return ring_.capacity() + spill_capacity_; }
  // Values that went to the spill since the queue was made.
  std::size_t spilled() const { return spilled_.load(std::memory_order_relaxed); }

  template <class Value>
  bool push(Value &&value)
  {
    // Once anything has spilled, later values spill too until the consumer has caught up: a producer
    // never overtakes its own spilled values through the ring.
    if (!spilling_.load(std::memory_order_acquire) && ring_.push(std::forward<Value>(value)))
      return true;
    std::lock_guard lock(spill_mutex_);
    if (spill_.size() - spill_head_ >= spill_capacity_)
      return false;
    spill_.emplace_back(std::forward<Value>(value));
    spilling_.store(true, std::memory_order_release);
    spilled_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  template <class Use>
  bool consume(Use &&use)
  {
    if (ring_.consume(use))
      return true;
    if (!spilling_.load(std::memory_order_acquire))
      return false;
    std::unique_lock lock(spill_mutex_);
    // A producer's ring values were taken before any of its spilled ones (under this mutex), so the
    // spill waits until the ring has nothing taken and unconsumed, published or not.
    if (ring_.consume(use))
      return true;
    if (!ring_.drained())
      return false;  // a producer is still writing its cell: come back for it
    if (spill_head_ == spill_.size()) {
      spilling_.store(false, std::memory_order_release);
      return false;
    }
    T value = std::move(spill_[spill_head_++]);
    if (spill_head_ == spill_.size()) {
      spill_ = {};  // the burst is over: give its memory back
      spill_head_ = 0;
      spilling_.store(false, std::memory_order_release);
    }
    lock.unlock();
    use(static_cast<const T &>(value));
    return true;
  }

 private:
  MpscQueue<T> ring_;
  const std::size_t spill_capacity_;
  std::atomic<bool> spilling_{false};
  std::atomic<std::size_t> spilled_{0};
  std::mutex spill_mutex_;
  std::vector<T> spill_;  // guarded by spill_mutex_; [spill_head_, size) not yet consumed
  std::size_t spill_head_ = 0;
};

}  // namespace riskgate::audit
