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

namespace {
// Rest offsets re-expressed in random per-joint frames (like a BVH whose joints carry rotated
// local axes): rest'[c] = F_parent^-1 rest[c]. The same skeleton, other local frames.
std::vector<float> reframed(const std::vector<float>& rest, unsigned seed) {
  std::vector<float> out(rest.size());
  Quat frames[kNumJoints];
  unsigned s = seed;
  auto rnd = [&s] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>((s >> 8) & 0xFFFF) / 65535.f * 2.f - 1.f;
  };
  for (int j = 0; j < kNumJoints; ++j) frames[j] = normalized(Quat{rnd(), rnd(), rnd(), rnd() + 0.1f});
  for (int c = 0; c < kNumJoints; ++c) {
    const int parent = kParents[c];
    const Vec3 v = load3(rest.data() + 3 * c);
    store3(parent >= 0 ? rotate(conjugate(frames[parent]), v) : v, out.data() + 3 * c);
  }
  return out;
}
}  // namespace

TEST(Rig, ReferencePoseIsAnUprightTPoseOnTheFloor) {
  const auto& clips = coamd_test::real_clips();
  ASSERT_FALSE(clips.empty());
  for (const auto& clip : clips) {
    float local[kRotFloats], pos[kPosFloats], fk[kPosFloats];
    reference_pose(clip.rest.data(), local, pos);
    // Its rotations and positions agree: forward kinematics on the rest offsets.
    forward_kinematics(pos, local, clip.rest.data(), fk);
    for (int k = 0; k < kPosFloats; ++k) EXPECT_NEAR(fk[k], pos[k], 1e-5f) << clip.id << " float " << k;
    auto P = [&](int j) { return load3(pos + 3 * j); };
    const Vec3 up{0, 1, 0}, left{1, 0, 0}, down{0, -1, 0};
    EXPECT_NEAR(pos[0], 0.f, 1e-6f);
    EXPECT_NEAR(pos[2], 0.f, 1e-6f);
    EXPECT_LT(angle_between(P(2) - P(1), up), 1e-3f) << "spine straight up";
    EXPECT_LT(angle_between(P(4) - P(3), up), 1e-3f) << "neck straight up";
    EXPECT_LT(angle_between(P(3) - P(2), up), 1e-3f) << "chest to neck up";
    for (int side = 0; side < 2; ++side) {
      const Vec3 out = side == 0 ? left : left * -1.f;
      const int sh = side == 0 ? 5 : 9, leg = side == 0 ? 13 : 17;
      for (int j = sh; j < sh + 3; ++j) EXPECT_LT(angle_between(P(j + 1) - P(j), out), 1e-3f) << kJointNames[j];
      EXPECT_LT(angle_between(P(leg + 1) - P(leg), down), 1e-3f);
      EXPECT_LT(angle_between(P(leg + 2) - P(leg + 1), down), 1e-3f);
      const Vec3 toe = P(leg + 3) - P(leg + 2);
      EXPECT_NEAR(std::asin(-toe.y / norm(toe)) * 180.f / 3.14159265f, 40.f, 1e-2f) << "toes 40 degrees down";
      EXPECT_NEAR(toe.x, 0.f, 1e-4f) << "toes straight forward";
      EXPECT_GT(toe.z, 0.f);
    }
    const float toes_len = 0.5f * (norm(load3(clip.rest.data() + 48)) + norm(load3(clip.rest.data() + 60)));
    EXPECT_NEAR(std::min(pos[3 * 16 + 1], pos[3 * 20 + 1]), 0.375f * toes_len, 1e-5f) << "toes on the floor";
    for (int j = 0; j < kNumJoints; ++j) EXPECT_GT(pos[3 * j + 1], 0.f) << kJointNames[j];
    // The left side is at +X, the front at +Z (the project frame).
    EXPECT_GT(pos[3 * 8], 0.5f);
    EXPECT_LT(pos[3 * 12], -0.5f);
    // Hips twist: the hip joints lie left and right of the hips, level.
    EXPECT_LT(angle_between(P(13) - P(17), left), 0.05f);
  }
}

TEST(Rig, ReferencePositionsDoNotDependOnTheRestOffsetsLocalFrames) {
  const auto& clip = coamd_test::real_clips().at(1);
  float local_a[kRotFloats], pos_a[kPosFloats], local_b[kRotFloats], pos_b[kPosFloats], fk[kPosFloats];
  reference_pose(clip.rest.data(), local_a, pos_a);
  for (unsigned seed : {1u, 7u, 42u}) {
    const std::vector<float> rest = reframed(clip.rest, seed);
    reference_pose(rest.data(), local_b, pos_b);
    for (int k = 0; k < kPosFloats; ++k) EXPECT_NEAR(pos_b[k], pos_a[k], 1e-4f) << "seed " << seed << " float " << k;
    forward_kinematics(pos_b, local_b, rest.data(), fk);
    for (int k = 0; k < kPosFloats; ++k) EXPECT_NEAR(fk[k], pos_b[k], 1e-4f) << "seed " << seed << " float " << k;
  }
}

TEST(Rig, ReferencePoseHingesBendElbowsForwardAndKneesBackward) {
  // The hinge directions are fixed in the joints' own frames (+Z / -Z, as the dataset's BVH
  // skeleton has them); whatever frame the rest offsets use, the reference pose turns each upper
  // arm's hinge direction (its part perpendicular to the bone) to world +Z, so elbows bend
  // forward, and each thigh's to world -Z, so knees bend backward.
  const auto& clip = coamd_test::real_clips().at(0);
  float local[kRotFloats], pos[kPosFloats], world[kRotFloats];
  reference_pose(clip.rest.data(), local, pos);
  local_to_world(local, world);
  const struct { int joint; Vec3 hinge_local; Vec3 expected; } cases[] = {
      {6, {0, 0, 1}, {0, 0, 1}}, {10, {0, 0, -1}, {0, 0, 1}}, {13, {0, 0, -1}, {0, 0, -1}}, {17, {0, 0, 1}, {0, 0, -1}}};
  for (const auto& c : cases) {
    // The hinge direction as far as it is perpendicular to the bone.
    const Vec3 bone = normalized(load3(clip.rest.data() + 3 * (c.joint + 1)));
    const Vec3 h = normalized(c.hinge_local - bone * dot(c.hinge_local, bone));
    const Vec3 got = rotate(load4(world + 4 * c.joint), h);
    EXPECT_LT(angle_between(got, c.expected), 1e-3f) << kJointNames[c.joint];
  }
}
