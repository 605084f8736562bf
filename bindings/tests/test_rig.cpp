// Positions -> rotations -> forward kinematics on real motions.
#include <gtest/gtest.h>

#include <cmath>

#include "coamd/convert.hpp"
#include "coamd/math.hpp"
#include "coamd/rig.hpp"
#include "coamd/skeleton.hpp"
#include "real_motions.hpp"

using namespace coamd;

namespace {
float angle_between(Vec3 a, Vec3 b) {
  const float c = dot(normalized(a), normalized(b));
  return std::acos(std::max(-1.f, std::min(1.f, c)));
}
float quat_angle(const float* a, const float* b) {  // rotation angle between two unit quaternions
  const float d = std::fabs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]);
  return 2.f * std::acos(std::min(1.f, d));
}
}  // namespace

TEST(Rig, SolvedRotationsPointEveryBoneLikeThePositions) {
  const auto& clips = coamd_test::real_clips();
  ASSERT_FALSE(clips.empty());
  int checked = 0;
  for (const auto& clip : clips) {
    for (int t = 0; t < clip.num_frames(); ++t) {
      const float* p = clip.frame(t);
      float local[kRotFloats], world[kRotFloats], fk[kPosFloats];
      solve_rotations(p, clip.rest.data(), local, world);
      for (int j = 0; j < kNumJoints; ++j) {
        const Quat q = load4(local + 4 * j);
        ASSERT_NEAR(std::sqrt(dot(q, q)), 1.f, 1e-4f) << clip.id << " frame " << t << " joint " << j;
      }
      // Every bone rotated from its rest vector by its parent's world rotation points along the
      // real bone (exact for single-child parents and the first child of Hips / Chest).
      for (int c = 1; c < kNumJoints; ++c) {
        const int parent = kParents[c];
        const Vec3 posed = rotate(load4(world + 4 * parent), load3(clip.rest.data() + 3 * c));
        const Vec3 real = load3(p + 3 * c) - load3(p + 3 * parent);
        const bool exact = c != 13 && c != 17 && c != 5 && c != 9;  // the twist-only children
        EXPECT_LT(angle_between(posed, real), exact ? 2e-3f : 0.05f)
            << clip.id << " frame " << t << " bone " << kJointNames[c];
      }
      // Forward kinematics from the hips rebuilds the pose (bone lengths are the rest lengths).
      forward_kinematics(p, local, clip.rest.data(), fk);
      for (int j = 0; j < kNumJoints; ++j) {
        const float err = norm(load3(fk + 3 * j) - load3(p + 3 * j));
        EXPECT_LT(err, 0.02f) << clip.id << " frame " << t << " joint " << kJointNames[j];
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(Rig, RestPoseGivesIdentityRotations) {
  const auto& clip = coamd_test::real_clips().at(0);
  // The frame the rest offsets were taken from is the rest pose: every rotation is identity.
  float local[kRotFloats];
  solve_rotations(clip.frame(0), clip.rest.data(), local, nullptr);
  const float id[4] = {0.f, 0.f, 0.f, 1.f};
  for (int j = 0; j < kNumJoints; ++j) EXPECT_LT(quat_angle(local + 4 * j, id), 2e-3f) << kJointNames[j];
}

TEST(Rig, SolvingInAnEngineFrameEqualsConvertingTheSolution) {
  // The solver commutes with the Unity / Unreal reflections, so rotations solved in the project
  // frame and converted are the ones an engine would solve from converted positions.
  const auto& clips = coamd_test::real_clips();
  for (Coords c : {Coords::Unity, Coords::Unreal}) {
    for (const auto& clip : clips) {
      float rest_c[kPosFloats];
      convert_positions(clip.rest.data(), kNumJoints, Coords::RightHandedYUp, c, rest_c);
      for (int t = 0; t < clip.num_frames(); t += 9) {
        float local[kRotFloats], local_conv[kRotFloats], pos_c[kPosFloats], local_c[kRotFloats];
        solve_rotations(clip.frame(t), clip.rest.data(), local, nullptr);
        convert_rotations(local, kNumJoints, Coords::RightHandedYUp, c, local_conv);
        convert_positions(clip.frame(t), kNumJoints, Coords::RightHandedYUp, c, pos_c);
        solve_rotations(pos_c, rest_c, local_c, nullptr);
        for (int j = 0; j < kNumJoints; ++j) {
          EXPECT_LT(quat_angle(local_conv + 4 * j, local_c + 4 * j), 2e-3f)
              << clip.id << " frame " << t << " joint " << kJointNames[j] << " coords " << int(c);
        }
      }
    }
  }
}
