// The jitter buffer: capacity, ordering, terminal states, and lock-free publication under a
// concurrent writer (real frames, checked slot by slot by a reader thread).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "coamd/frame_buffer.hpp"
#include "real_motions.hpp"

using coamd::FrameBuffer;
using coamd::StreamStatus;

namespace {
void write_frame(FrameBuffer& buf, const float* positions) {
  coamd::FrameSlot* s = buf.next_slot();
  ASSERT_NE(s, nullptr);
  std::memcpy(s->positions, positions, sizeof(s->positions));
  for (int k = 0; k < coamd::kRotFloats; ++k) {
    s->local[k] = positions[k % 63];
    s->world[k] = -positions[k % 63];
  }
  buf.publish();
}
}  // namespace

TEST(FrameBuffer, AppendsInOrderUpToCapacity) {
  const auto& clips = coamd_test::real_clips();
  ASSERT_FALSE(clips.empty());
  const auto& clip = clips[0];
  FrameBuffer buf(10);
  EXPECT_EQ(buf.count(), 0u);
  for (int t = 0; t < 10; ++t) write_frame(buf, clip.frame(t));
  EXPECT_EQ(buf.count(), 10u);
  EXPECT_EQ(buf.next_slot(), nullptr) << "a full buffer must refuse more frames";
  buf.publish();  // publishing with no free slot is a no-op
  EXPECT_EQ(buf.count(), 10u);
  for (int t = 0; t < 10; ++t) {
    EXPECT_EQ(std::memcmp(buf.slot(t).positions, clip.frame(t), 63 * sizeof(float)), 0) << "frame " << t;
  }
}

TEST(FrameBuffer, FirstTerminalStateWins) {
  FrameBuffer a(4), b(4), c(4);
  EXPECT_EQ(a.status(), StreamStatus::Receiving);
  a.complete(3);
  a.fail("late");
  a.cancel();
  EXPECT_EQ(a.status(), StreamStatus::Complete);
  EXPECT_EQ(a.total(), 3u);
  b.fail("UNAVAILABLE: connection lost");
  b.complete(4);
  EXPECT_EQ(b.status(), StreamStatus::Failed);
  EXPECT_EQ(b.error(), "UNAVAILABLE: connection lost");
  c.cancel();
  c.fail("after cancel");
  EXPECT_EQ(c.status(), StreamStatus::Cancelled);
  EXPECT_TRUE(c.error().empty());
}

TEST(FrameBuffer, ReaderNeverSeesAPartialFrame) {
  // One writer appends real frames while a reader polls count() and checks every published slot
  // in full: with release/acquire publication no reader may see a half-written frame.
  const auto& clips = coamd_test::real_clips();
  ASSERT_FALSE(clips.empty());
  const auto& clip = clips[1 % clips.size()];
  const int n = clip.num_frames();
  FrameBuffer buf(static_cast<uint32_t>(n));
  std::atomic<int> mismatches{0};
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    uint32_t checked = 0;
    while (!stop.load() || checked < buf.count()) {
      const uint32_t c = buf.count();
      for (; checked < c; ++checked) {
        const coamd::FrameSlot& s = buf.slot(checked);
        if (std::memcmp(s.positions, clip.frame(checked), 63 * sizeof(float)) != 0) ++mismatches;
        for (int k = 0; k < coamd::kRotFloats; ++k) {
          if (s.local[k] != clip.frame(checked)[k % 63] || s.world[k] != -clip.frame(checked)[k % 63]) {
            ++mismatches;
            break;
          }
        }
      }
    }
  });
  for (int t = 0; t < n; ++t) {
    write_frame(buf, clip.frame(t));
    if (t % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  buf.complete(static_cast<uint32_t>(n));
  stop.store(true);
  reader.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(buf.count(), static_cast<uint32_t>(n));
  EXPECT_EQ(buf.status(), StreamStatus::Complete);
}
