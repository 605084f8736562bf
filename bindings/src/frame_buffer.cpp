#include "coamd/frame_buffer.hpp"

namespace coamd {

FrameBuffer::FrameBuffer(uint32_t capacity, bool ring)
    : capacity_(capacity > 0 ? capacity : 1), ring_(ring), slots_(new FrameSlot[capacity > 0 ? capacity : 1]()) {}

FrameSlot* FrameBuffer::next_slot() {
  const uint32_t n = count_.load(std::memory_order_relaxed);
  if (ring_) return &slots_[n % capacity_];
  return n < capacity_ ? &slots_[n] : nullptr;
}

void FrameBuffer::publish() {
  const uint32_t n = count_.load(std::memory_order_relaxed);
  if (ring_ || n < capacity_) count_.store(n + 1, std::memory_order_release);
}

bool FrameBuffer::finish(StreamStatus s) {
  bool expected = false;
  if (!finishing_.compare_exchange_strong(expected, true)) return false;
  status_.store(static_cast<int32_t>(s), std::memory_order_release);
  return true;
}

void FrameBuffer::complete(uint32_t total) {
  if (finishing_.load(std::memory_order_acquire)) return;
  total_.store(total, std::memory_order_release);
  finish(StreamStatus::Complete);
}

void FrameBuffer::fail(const std::string& message) {
  bool expected = false;
  if (!finishing_.compare_exchange_strong(expected, true)) return;
  error_ = message;
  status_.store(static_cast<int32_t>(StreamStatus::Failed), std::memory_order_release);
}

void FrameBuffer::cancel() { finish(StreamStatus::Cancelled); }

}  // namespace coamd
