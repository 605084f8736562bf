// Real motions for the tests, exported at test time from the processed dataset
// (export_real_motions.py, the CTest fixture `export_real_motions`).
#pragma once

#include <string>
#include <vector>

namespace coamd_test {

struct RealClip {
  std::string id;
  std::vector<float> rest;    // 63: parent-relative bone vectors of frame 0 (root 0)
  std::vector<float> frames;  // T x 63 joint positions, metres, project frame, 20 fps
  int num_frames() const { return static_cast<int>(frames.size() / 63); }
  const float* frame(int t) const { return frames.data() + 63 * t; }
};

// Loaded once from --real-motions=PATH (or $COAMD_REAL_MOTIONS); fails the test when missing.
const std::vector<RealClip>& real_clips();

}  // namespace coamd_test
