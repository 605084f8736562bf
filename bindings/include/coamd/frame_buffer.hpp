// The jitter buffer: a pre-allocated, append-only array of frames written by one receiver thread
// and read lock-free by the engine thread.
//
// The receiver fills slot n completely, then publishes it with count_.store(n + 1, release); a
// reader that loads count_ (acquire) may read slots [0, count) without a lock, since a published
// slot is never written again. Terminal status (complete / failed / cancelled) is published the
// same way after the error text is set. Capacity is fixed at construction (no allocation later).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "coamd/skeleton.hpp"

namespace coamd {

struct FrameSlot {
  float positions[kPosFloats];
  float local[kRotFloats];
  float world[kRotFloats];
};

enum class StreamStatus : int32_t { Receiving = 0, Complete = 1, Failed = 2, Cancelled = 3 };

class FrameBuffer {
 public:
  explicit FrameBuffer(uint32_t capacity);
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;

  uint32_t capacity() const { return capacity_; }

  // ---- writer side (one thread) ----
  // The next slot to fill (index == count()), or nullptr when the buffer is full.
  FrameSlot* next_slot();
  // Publishes the slot returned by next_slot().
  void publish();
  // Terminal states; only the first call has an effect. total = frames of the whole motion.
  void complete(uint32_t total);
  void fail(const std::string& message);
  void cancel();

  // ---- reader side (any thread, lock-free) ----
  uint32_t count() const { return count_.load(std::memory_order_acquire); }
  StreamStatus status() const { return static_cast<StreamStatus>(status_.load(std::memory_order_acquire)); }
  uint32_t total() const { return total_.load(std::memory_order_acquire); }
  const FrameSlot& slot(uint32_t i) const { return slots_[i]; }
  // The failure message; valid once status() == Failed.
  const std::string& error() const { return error_; }

 private:
  bool finish(StreamStatus s);

  uint32_t capacity_;
  std::unique_ptr<FrameSlot[]> slots_;
  std::atomic<uint32_t> count_{0};
  std::atomic<int32_t> status_{0};
  std::atomic<uint32_t> total_{0};
  std::atomic<bool> finishing_{false};
  std::string error_;
};

}  // namespace coamd
