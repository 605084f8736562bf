// Engine-thread playback of a FrameBuffer: a jitter-buffer clock plus interpolation.
//
// States (coamd_state): BUFFERING until buffering_delay_s of motion lies ahead of the playhead
// (or the stream has ended), then PLAYING with motion time = engine time - origin. If the playhead
// catches up with the received frames before the stream ends, playback holds the last frame and
// goes back to BUFFERING (a rebuffer), resuming from the same motion time once the delay is
// buffered again, so motion never jumps. FINISHED holds the last frame once the stream completed
// and the playhead passed it. ERROR / CANCELLED freeze the pose where it was.
// Interpolation: positions lerped, local rotations slerped (shorter arc), world rotations chained
// from the interpolated locals. sample() never allocates and takes no lock.
#pragma once

#include <cstdint>

#include "coamd/frame_buffer.hpp"

namespace coamd {

enum class PlayState : int32_t { Buffering = 0, Playing = 1, Finished = 2, Error = 3, Cancelled = 4 };

struct SampleInfo {
  PlayState state = PlayState::Buffering;
  int32_t frame = -1;
  float alpha = 0.f;
  float motion_time_s = 0.f;
  uint32_t frames_available = 0;
  uint32_t total_frames = 0;
  int32_t rebuffer_count = 0;
  float root_velocity[3] = {0.f, 0.f, 0.f};
  float heading = 0.f;
};

// Interpolates the frames [0, count) of buf at motion time m (seconds, clamped to them).
// Returns the lower frame index (or -1 when count == 0, outputs untouched) and sets alpha.
// root_velocity3 / heading (optional): the frames' root motion, lerped (heading on the shorter arc).
// A ring buffer's frames before buf.oldest(count) are never read (the time is clamped to them).
int32_t interpolate(const FrameBuffer& buf, uint32_t count, double motion_time_s, float fps,
                    float* positions, float* local, float* world, float* alpha,
                    float* root_velocity3 = nullptr, float* heading = nullptr);

class Playback {
 public:
  Playback(const FrameBuffer& buf, float fps, float buffering_delay_s);
  // Engine time t in seconds (any origin). Outputs may be nullptr.
  SampleInfo sample(double engine_time_s, float* positions, float* local, float* world);
  // Back to BUFFERING at motion time 0 (replay).
  void restart();
  float buffering_delay_s() const { return delay_; }

 private:
  const FrameBuffer& buf_;
  float fps_;
  float delay_;
  bool buffering_ = true;
  double origin_ = 0.0;       // engine time of motion time 0 while playing
  double resume_at_ = 0.0;    // motion time to resume from while buffering
  double last_motion_ = 0.0;  // last motion time sampled (frozen on error / cancel)
  int32_t rebuffers_ = 0;
};

}  // namespace coamd
