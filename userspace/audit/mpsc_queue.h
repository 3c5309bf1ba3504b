// Bounded lock-free queue (Dmitry Vyukov's array queue): many producers on the proxy's workers, one
// consumer thread. push() never blocks and never allocates; it fails when the queue is full, and the
// caller counts that.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>

namespace riskgate::audit {

template <class T>
class MpscQueue {
 public:
  explicit MpscQueue(std::size_t capacity)
      : mask_(std::bit_ceil(capacity < 2 ? std::size_t{2} : capacity) - 1), cells_(new Cell[mask_ + 1])
  {
    for (std::size_t i = 0; i <= mask_; ++i)
      cells_[i].sequence.store(i, std::memory_order_relaxed);
  }

  std::size_t capacity() const { return mask_ + 1; }

  // Assigns into the cell, so a T built from its parts (a variant's alternative) needs no temporary.
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

}  // namespace riskgate::audit
