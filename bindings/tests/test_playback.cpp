// Playback: the buffering state machine and interpolation, on real frames.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "coamd/math.hpp"
#include "coamd/playback.hpp"
#include "coamd/rig.hpp"
#include "real_motions.hpp"

using coamd::FrameBuffer;
using coamd::Playback;
using coamd::PlayState;

namespace {
constexpr float kFps = 20.f;

// Appends frames [from, to) of clip (rotations solved against the clip's rest offsets).
void feed(FrameBuffer& buf, const coamd_test::RealClip& clip, int from, int to) {
  for (int t = from; t < to; ++t) {
    coamd::FrameSlot* s = buf.next_slot();
    ASSERT_NE(s, nullptr);
    std::memcpy(s->positions, clip.frame(t), sizeof(s->positions));
    coamd::solve_rotations(clip.frame(t), clip.rest.data(), s->local, s->world);
    buf.publish();
  }
}

const coamd_test::RealClip& walk() {
  const auto& clips = coamd_test::real_clips();
  if (clips.empty()) throw std::runtime_error("no real clips");
  return clips[0];
}

float max_abs_diff(const float* a, const float* b, int n) {
  float m = 0.f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}
}  // namespace

TEST(Playback, BuffersUntilTheDelayIsAhead) {
  const auto& clip = walk();
  FrameBuffer buf(clip.num_frames());
  Playback pb(buf, kFps, 0.5f);  // 0.5 s = 10 frames ahead of motion time 0
  float pos[63];
  auto info = pb.sample(100.0, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Buffering);
  EXPECT_EQ(info.frame, -1) << "no frame yet";
  feed(buf, clip, 0, 10);  // frames 0..9: 0.45 s ahead, not enough
  info = pb.sample(100.1, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Buffering);
  EXPECT_EQ(info.frame, 0);
  EXPECT_EQ(max_abs_diff(pos, clip.frame(0), 63), 0.f) << "buffering shows the first frame";
  feed(buf, clip, 10, 11);  // frame 10 at 0.5 s: playback starts now, at engine time 100.2
  info = pb.sample(100.2, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Playing);
  EXPECT_FLOAT_EQ(info.motion_time_s, 0.f);
  info = pb.sample(100.2 + 7.0 / kFps, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Playing);
  EXPECT_EQ(info.frame, 7);
  EXPECT_EQ(max_abs_diff(pos, clip.frame(7), 63), 0.f) << "t = k / fps gives frame k exactly";
}

TEST(Playback, InterpolatesPositionsAndSlerpsRotations) {
  const auto& clip = walk();
  const int n = clip.num_frames();
  FrameBuffer buf(n);
  feed(buf, clip, 0, n);
  buf.complete(n);
  Playback pb(buf, kFps, 0.2f);
  float pos[63], loc[84], wor[84];
  pb.sample(0.0, pos, loc, wor);  // complete stream: starts at once
  for (int k : {3, 17, 42}) {
    for (float a : {0.25f, 0.5f, 0.8f}) {
      const auto info = pb.sample((k + a) / kFps, pos, loc, wor);
      ASSERT_EQ(info.state, PlayState::Playing);
      ASSERT_EQ(info.frame, k);
      EXPECT_NEAR(info.alpha, a, 1e-4f);
      float want[63];
      for (int i = 0; i < 63; ++i) want[i] = clip.frame(k)[i] + a * (clip.frame(k + 1)[i] - clip.frame(k)[i]);
      EXPECT_LT(max_abs_diff(pos, want, 63), 1e-5f);
      for (int j = 0; j < 21; ++j) {
        const coamd::Quat q0 = coamd::load4(buf.slot(k).local + 4 * j);
        const coamd::Quat q1 = coamd::load4(buf.slot(k + 1).local + 4 * j);
        const coamd::Quat q = coamd::load4(loc + 4 * j);
        EXPECT_NEAR(std::sqrt(coamd::dot(q, q)), 1.f, 1e-4f) << "unit quaternion";
        // slerp splits the angle between the neighbours in the ratio a : (1 - a)
        const float total = 2.f * std::acos(std::min(1.f, std::fabs(coamd::dot(q0, q1))));
        const float part0 = 2.f * std::acos(std::min(1.f, std::fabs(coamd::dot(q0, q))));
        const float part1 = 2.f * std::acos(std::min(1.f, std::fabs(coamd::dot(q, q1))));
        EXPECT_NEAR(part0, a * total, 2e-3f) << "joint " << j;
        EXPECT_NEAR(part1, (1.f - a) * total, 2e-3f) << "joint " << j;
      }
      // world rotations are the chain of the interpolated locals
      float chained[84];
      coamd::local_to_world(loc, chained);
      EXPECT_LT(max_abs_diff(chained, wor, 84), 1e-6f);
    }
  }
}

TEST(Playback, RebuffersOnUnderrunAndResumesWithoutAJump) {
  const auto& clip = walk();
  FrameBuffer buf(clip.num_frames());
  Playback pb(buf, kFps, 0.2f);  // 4 frames ahead
  float pos[63];
  feed(buf, clip, 0, 5);  // 0.2 s ahead of 0
  auto info = pb.sample(10.0, pos, nullptr, nullptr);
  ASSERT_EQ(info.state, PlayState::Playing);
  // The engine runs 0.5 s on but only frames 0..4 (0.2 s) exist: hold frame 4, buffer again.
  info = pb.sample(10.5, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Buffering);
  EXPECT_EQ(info.frame, 4);
  EXPECT_EQ(info.rebuffer_count, 1);
  EXPECT_EQ(max_abs_diff(pos, clip.frame(4), 63), 0.f);
  feed(buf, clip, 5, 8);  // 0.15 s ahead of frame 4: still buffering
  info = pb.sample(10.6, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Buffering);
  EXPECT_FLOAT_EQ(info.motion_time_s, 4.f / kFps);
  feed(buf, clip, 8, 9);  // 0.2 s ahead: resume from frame 4 at engine time 10.7
  info = pb.sample(10.7, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Playing);
  EXPECT_EQ(info.frame, 4);
  info = pb.sample(10.7 + 2.0 / kFps, pos, nullptr, nullptr);
  EXPECT_EQ(info.frame, 6);
  EXPECT_EQ(max_abs_diff(pos, clip.frame(6), 63), 0.f);
}

TEST(Playback, FinishesAndHoldsTheLastFrame) {
  const auto& clip = walk();
  FrameBuffer buf(64);
  feed(buf, clip, 0, 30);
  Playback pb(buf, kFps, 0.25f);
  float pos[63];
  EXPECT_EQ(pb.sample(0.0, pos, nullptr, nullptr).state, PlayState::Playing);
  buf.complete(30);
  auto info = pb.sample(29.0 / kFps - 0.01, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Playing);
  EXPECT_EQ(info.total_frames, 30u);
  info = pb.sample(5.0, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Finished);
  EXPECT_EQ(info.frame, 29);
  EXPECT_EQ(max_abs_diff(pos, clip.frame(29), 63), 0.f);
  pb.restart();  // replay from the start
  info = pb.sample(6.0, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Playing);
  EXPECT_EQ(info.frame, 0);
}

TEST(Playback, ShortCompleteStreamPlaysWithoutWaitingForTheDelay) {
  const auto& clip = walk();
  FrameBuffer buf(8);
  feed(buf, clip, 0, 3);
  buf.complete(3);
  Playback pb(buf, kFps, 2.0f);  // a delay longer than the whole motion
  EXPECT_EQ(pb.sample(1.0, nullptr, nullptr, nullptr).state, PlayState::Playing);
}

TEST(Playback, ErrorAndCancelFreezeThePose) {
  const auto& clip = walk();
  for (bool cancel : {false, true}) {
    FrameBuffer buf(64);
    feed(buf, clip, 0, 20);
    Playback pb(buf, kFps, 0.1f);
    float pos[63];
    pb.sample(0.0, pos, nullptr, nullptr);
    auto info = pb.sample(0.3, pos, nullptr, nullptr);
    ASSERT_EQ(info.frame, 6);
    if (cancel) buf.cancel(); else buf.fail("INTERNAL: model failed");
    info = pb.sample(0.8, pos, nullptr, nullptr);
    EXPECT_EQ(info.state, cancel ? PlayState::Cancelled : PlayState::Error);
    EXPECT_EQ(info.frame, 6) << "the pose stays where it was";
    EXPECT_EQ(max_abs_diff(pos, clip.frame(6), 63), 0.f);
  }
}

TEST(Playback, EmptyCompleteStreamIsFinishedWithoutAPose) {
  FrameBuffer buf(4);
  buf.complete(0);
  Playback pb(buf, kFps, 0.2f);
  float pos[63] = {42.f};
  const auto info = pb.sample(3.0, pos, nullptr, nullptr);
  EXPECT_EQ(info.state, PlayState::Finished);
  EXPECT_EQ(info.frame, -1);
  EXPECT_EQ(pos[0], 42.f) << "outputs untouched without a frame";
}

TEST(Playback, RootVelocityAndHeadingAreInterpolatedOnTheShorterArc) {
  FrameBuffer buf(8);
  const float kPi = 3.14159265f;
  const float headings[3] = {0.f, kPi - 0.1f, -kPi + 0.1f};  // frames 1 -> 2 cross +-pi
  for (int t = 0; t < 3; ++t) {
    coamd::FrameSlot* s = buf.next_slot();
    ASSERT_NE(s, nullptr);
    std::memcpy(s->positions, walk().frame(t), sizeof(s->positions));
    coamd::solve_rotations(walk().frame(t), walk().rest.data(), s->local, s->world);
    s->root_velocity[0] = static_cast<float>(t);
    s->root_velocity[1] = 0.f;
    s->root_velocity[2] = 2.f * t;
    s->heading = headings[t];
    buf.publish();
  }
  buf.complete(3);
  float vel[3], heading, alpha;
  ASSERT_EQ(coamd::interpolate(buf, 3, 0.5 / kFps, kFps, nullptr, nullptr, nullptr, &alpha, vel, &heading), 0);
  EXPECT_NEAR(vel[0], 0.5f, 1e-6f);
  EXPECT_NEAR(vel[2], 1.f, 1e-6f);
  EXPECT_NEAR(heading, 0.5f * (kPi - 0.1f), 1e-5f);
  coamd::interpolate(buf, 3, 1.5 / kFps, kFps, nullptr, nullptr, nullptr, &alpha, vel, &heading);
  EXPECT_NEAR(std::fabs(heading), kPi, 1e-5f) << "through +-pi, not through 0";
  coamd::interpolate(buf, 3, 2.0 / kFps, kFps, nullptr, nullptr, nullptr, &alpha, vel, &heading);
  EXPECT_NEAR(heading, -kPi + 0.1f, 1e-6f);
  EXPECT_NEAR(vel[2], 4.f, 1e-6f);
  // The playhead reports them with the pose.
  Playback pb(buf, kFps, 0.f);
  pb.sample(10.0, nullptr, nullptr, nullptr);  // starts at motion time 0
  const coamd::SampleInfo i = pb.sample(10.0 + 0.5 / kFps, nullptr, nullptr, nullptr);
  EXPECT_EQ(i.frame, 0);
  EXPECT_NEAR(i.root_velocity[2], 1.f, 1e-5f);
}

TEST(Playback, ARingKeepsPlayingForeverAndAPlayheadLeftBehindJumpsToTheOldestFrameHeld) {
  const auto& clip = walk();
  FrameBuffer ring(64, true);
  Playback pb(ring, kFps, 0.f);
  const uint32_t keep = 64 - 64 / 4;
  float pos[coamd::kPosFloats];
  double t = 100.0;
  int last = -1;
  for (int n = 0; n < 400; ++n) {  // 20 s through a 3.2 s ring, the playhead keeping up
    coamd::FrameSlot* s = ring.next_slot();
    ASSERT_NE(s, nullptr) << "a ring never runs full";
    const int k = n % clip.num_frames();
    std::memcpy(s->positions, clip.frame(k), sizeof(s->positions));
    coamd::solve_rotations(clip.frame(k), clip.rest.data(), s->local, s->world);
    ring.publish();
    const coamd::SampleInfo i = pb.sample(t, pos, nullptr, nullptr);
    if (n > 0) {
      ASSERT_GE(i.frame, last);
      ASSERT_GE(static_cast<uint32_t>(i.frame), ring.oldest(ring.count()));
    }
    if (i.frame >= 0 && i.alpha == 0.f) ASSERT_EQ(max_abs_diff(pos, clip.frame(i.frame % clip.num_frames()), 63), 0.f);
    last = i.frame;
    t += 1.0 / kFps;
  }
  EXPECT_EQ(ring.count(), 400u);
  EXPECT_EQ(ring.oldest(400), 400u - keep);
  EXPECT_GT(last, 390);
  // A playhead that stalled (a paused game) at frame 0 jumps to the oldest frame still held.
  Playback late(ring, kFps, 0.f);
  late.sample(0.0, nullptr, nullptr, nullptr);  // starts playing at motion time 0 ...
  FrameBuffer* writable = &ring;
  for (int n = 400; n < 420; ++n) {  // ... while 20 more frames arrive
    coamd::FrameSlot* s = writable->next_slot();
    std::memcpy(s->positions, clip.frame(n % clip.num_frames()), sizeof(s->positions));
    writable->publish();
  }
  const coamd::SampleInfo j = late.sample(0.5, pos, nullptr, nullptr);
  EXPECT_EQ(static_cast<uint32_t>(j.frame), ring.oldest(420));
  EXPECT_EQ(j.state, PlayState::Playing);
  const coamd::SampleInfo k = late.sample(0.55, pos, nullptr, nullptr);
  EXPECT_EQ(static_cast<uint32_t>(k.frame), ring.oldest(420) + 1) << "plays on from there at normal speed";
}
