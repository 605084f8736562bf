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
  float root_velocity[3];  // the hips' horizontal velocity, stream coordinates and units per second
  float heading;           // facing angle (radians) in the stream's coordinates
};

enum class StreamStatus : int32_t { Receiving = 0, Complete = 1, Failed = 2, Cancelled = 3 };

class FrameBuffer {
 public:
  // ring: an endless stream (sessions): frame i lives in slot i % capacity and the oldest frames are
  // overwritten; readers stay within oldest() .. count() - 1.
  explicit FrameBuffer(uint32_t capacity, bool ring = false);
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
  const FrameSlot& slot(uint32_t i) const { return slots_[ring_ ? i % capacity_ : i]; }
  bool ring() const { return ring_; }
  // The oldest frame a reader may use given count n: 0, or for a ring the frames still held minus
  // a guard of a quarter of the ring (the receiver may overwrite the slots beyond it meanwhile).
  uint32_t oldest(uint32_t n) const {
    const uint32_t keep = capacity_ - capacity_ / 4;
    return ring_ && n > keep ? n - keep : 0;
  }
  // The failure message; valid once status() == Failed.
  const std::string& error() const { return error_; }

 private:
  bool finish(StreamStatus s);

  uint32_t capacity_;
  bool ring_;
  std::unique_ptr<FrameSlot[]> slots_;
  std::atomic<uint32_t> count_{0};
  std::atomic<int32_t> status_{0};
  std::atomic<uint32_t> total_{0};
  std::atomic<bool> finishing_{false};
  std::string error_;
};

}  // namespace coamd
