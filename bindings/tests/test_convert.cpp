// Coordinate conversions: axes, units, round trips, and rotations consistent with points.
#include <gtest/gtest.h>

#include <cmath>

#include "coamd/convert.hpp"
#include "coamd/math.hpp"
#include "coamd/rig.hpp"
#include "coamd/skeleton.hpp"
#include "real_motions.hpp"

using namespace coamd;

TEST(Convert, EngineAxesAndUnits) {
  // Project frame: up +Y, the character faces +Z, its left is +X.
  const float up[3] = {0, 1, 0}, forward[3] = {0, 0, 1}, left[3] = {1, 0, 0};
  float o[3];
  convert_positions(left, 1, Coords::RightHandedYUp, Coords::Unity, o);
  EXPECT_FLOAT_EQ(o[0], -1.f);  // Unity: x negated, metres
  EXPECT_FLOAT_EQ(o[1], 0.f);
  convert_positions(up, 1, Coords::RightHandedYUp, Coords::Unreal, o);
  EXPECT_FLOAT_EQ(o[2], 100.f);  // Unreal: Z up, centimetres
  convert_positions(forward, 1, Coords::RightHandedYUp, Coords::Unreal, o);
  EXPECT_FLOAT_EQ(o[0], 100.f);  // X forward
  convert_positions(left, 1, Coords::RightHandedYUp, Coords::Unreal, o);
  EXPECT_FLOAT_EQ(o[1], -100.f);  // Y right, so the left is -Y
}

TEST(Convert, RoundTripsOnRealFrames) {
  const auto& clip = coamd_test::real_clips().at(1);
  const Coords all[] = {Coords::RightHandedYUp, Coords::Unity, Coords::Unreal};
  for (Coords a : all) {
    for (Coords b : all) {
      float there[kPosFloats], back[kPosFloats];
      convert_positions(clip.frame(5), kNumJoints, Coords::RightHandedYUp, a, there);
      float mid[kPosFloats];
      convert_positions(there, kNumJoints, a, b, mid);
      convert_positions(mid, kNumJoints, b, Coords::RightHandedYUp, back);
      for (int k = 0; k < kPosFloats; ++k) EXPECT_NEAR(back[k], clip.frame(5)[k], 1e-5f);
      float local[kRotFloats], q1[kRotFloats], q2[kRotFloats];
      solve_rotations(clip.frame(5), clip.rest.data(), local, nullptr);
      convert_rotations(local, kNumJoints, Coords::RightHandedYUp, a, q1);
      convert_rotations(q1, kNumJoints, a, b, q2);
      convert_rotations(q2, kNumJoints, b, Coords::RightHandedYUp, q1);
      for (int k = 0; k < kRotFloats; ++k) EXPECT_NEAR(q1[k], local[k], 1e-6f);
    }
  }
}

TEST(Convert, RotationsActOnConvertedPointsAsOnOriginalOnes) {
  // For every real bone: convert(R v) == convert(R) convert(v). This is what makes the engine
  // rotations drive a rig the same way the project-frame rotations do.
  const auto& clips = coamd_test::real_clips();
  for (Coords c : {Coords::Unity, Coords::Unreal}) {
    for (const auto& clip : clips) {
      for (int t = 0; t < clip.num_frames(); t += 11) {
        float local[kRotFloats], world[kRotFloats], world_c[kRotFloats];
        solve_rotations(clip.frame(t), clip.rest.data(), local, world);
        convert_rotations(world, kNumJoints, Coords::RightHandedYUp, c, world_c);
        for (int j = 1; j < kNumJoints; ++j) {
          const int parent = kParents[j];
          const Vec3 v = load3(clip.rest.data() + 3 * j);
          float rv[3], rv_c[3], v_c[3];
          store3(rotate(load4(world + 4 * parent), v), rv);
          convert_positions(rv, 1, Coords::RightHandedYUp, c, rv_c);
          convert_positions(clip.rest.data() + 3 * j, 1, Coords::RightHandedYUp, c, v_c);
          const Vec3 got = rotate(load4(world_c + 4 * parent), load3(v_c));
          const float scale = c == Coords::Unreal ? 100.f : 1.f;
          EXPECT_LT(norm(got - load3(rv_c)), 1e-5f * scale) << clip.id << " frame " << t << " joint " << j;
        }
      }
    }
  }
}
