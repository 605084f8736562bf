#include "coamd/playback.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "coamd/math.hpp"
#include "coamd/rig.hpp"

namespace coamd {

int32_t interpolate(const FrameBuffer& buf, uint32_t count, double motion_time_s, float fps,
                    float* positions, float* local, float* world, float* alpha, float* root_velocity3,
                    float* heading) {
  *alpha = 0.f;
  if (count == 0) return -1;
  // A tiny bias so that t = k / fps lands on frame k exactly despite rounding.
  const double f = std::max(static_cast<double>(buf.oldest(count)), motion_time_s * fps + 1e-7);
  uint32_t i = static_cast<uint32_t>(std::floor(f));
  float a = static_cast<float>(f - std::floor(f));
  if (i >= count - 1) {
    i = count - 1;
    a = 0.f;
  }
  if (a < 1e-6f) a = 0.f;
  const FrameSlot& s0 = buf.slot(i);
  if (root_velocity3 || heading) {
    const FrameSlot& s1 = buf.slot(a == 0.f ? i : i + 1);
    if (root_velocity3) {
      for (int k = 0; k < 3; ++k) root_velocity3[k] = s0.root_velocity[k] + (s1.root_velocity[k] - s0.root_velocity[k]) * a;
    }
    if (heading) {
      float d = s1.heading - s0.heading;
      const float kPi = 3.14159265358979f;
      d = std::remainder(d, 2.f * kPi);
      float h = s0.heading + d * a;
      if (h > kPi) h -= 2.f * kPi;
      if (h < -kPi) h += 2.f * kPi;
      *heading = h;
    }
  }
  if (a == 0.f) {
    if (positions) std::memcpy(positions, s0.positions, sizeof(s0.positions));
    if (local) std::memcpy(local, s0.local, sizeof(s0.local));
    if (world) std::memcpy(world, s0.world, sizeof(s0.world));
    return static_cast<int32_t>(i);
  }
  const FrameSlot& s1 = buf.slot(i + 1);
  if (positions) {
    for (int k = 0; k < kPosFloats; ++k) positions[k] = s0.positions[k] + (s1.positions[k] - s0.positions[k]) * a;
  }
  if (local || world) {
    float tmp[kRotFloats];
    float* l = local ? local : tmp;
    for (int j = 0; j < kNumJoints; ++j) {
      store4(slerp(load4(s0.local + 4 * j), load4(s1.local + 4 * j), a), l + 4 * j);
    }
    if (world) local_to_world(l, world);
  }
  *alpha = a;
  return static_cast<int32_t>(i);
}

Playback::Playback(const FrameBuffer& buf, float fps, float buffering_delay_s)
    : buf_(buf), fps_(fps), delay_(std::max(0.f, buffering_delay_s)) {}

void Playback::restart() {
  buffering_ = true;
  resume_at_ = 0.0;
  last_motion_ = 0.0;
}

SampleInfo Playback::sample(double t, float* positions, float* local, float* world) {
  SampleInfo info;
  const StreamStatus status = buf_.status();  // read before count: a terminal status covers all frames
  const uint32_t n = buf_.count();
  info.frames_available = n;
  info.total_frames = status == StreamStatus::Complete ? buf_.total() : 0;
  const bool ended = status != StreamStatus::Receiving;
  const double last = n > 0 ? (n - 1) / static_cast<double>(fps_) : 0.0;
  double m = 0.0;

  if (status == StreamStatus::Failed || status == StreamStatus::Cancelled) {
    info.state = status == StreamStatus::Failed ? PlayState::Error : PlayState::Cancelled;
    m = last_motion_;
  } else if (status == StreamStatus::Complete && n == 0) {  // an empty motion: nothing to play
    info.state = PlayState::Finished;
    buffering_ = true;
    m = 0.0;
  } else if (buffering_) {
    const double ahead = last - resume_at_;
    if (n > 0 && (ended || ahead + 1e-6 >= delay_)) {
      buffering_ = false;
      origin_ = t - resume_at_;
    }
    m = resume_at_;
    info.state = PlayState::Buffering;
  }
  if (status != StreamStatus::Failed && status != StreamStatus::Cancelled && n > 0 && !buffering_) {
    m = t - origin_;
    if (m < 0.0) m = 0.0;
    const double oldest = buf_.oldest(n) / static_cast<double>(fps_);
    if (m < oldest) {  // a ring overwrote the playhead's frames (a long pause): jump to the oldest held
      origin_ = t - oldest;
      m = oldest;
    }
    if (m > last) {
      if (ended) {
        info.state = PlayState::Finished;
        m = last;
      } else {  // ran dry: hold the newest frame and buffer again from there
        buffering_ = true;
        resume_at_ = last;
        ++rebuffers_;
        m = last;
        info.state = PlayState::Buffering;
      }
    } else {
      info.state = PlayState::Playing;
    }
  }
  last_motion_ = m;
  info.motion_time_s = static_cast<float>(m);
  info.rebuffer_count = rebuffers_;
  info.frame = interpolate(buf_, n, m, fps_, positions, local, world, &info.alpha, info.root_velocity, &info.heading);
  return info;
}

}  // namespace coamd
