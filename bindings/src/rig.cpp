#include "coamd/rig.hpp"

#include <algorithm>
#include <cmath>

#include "coamd/math.hpp"
#include "coamd/skeleton.hpp"

namespace coamd {

namespace {
constexpr int kHips = 0, kSpine = 1, kChest = 2, kNeck = 3;
constexpr int kShoulderL = 5, kShoulderR = 9, kUpperLegL = 13, kUpperLegR = 17;

// First child of every joint (-1 for leaves), from kParents.
struct Children {
  int first[kNumJoints];
  Children() {
    for (int j = 0; j < kNumJoints; ++j) first[j] = -1;
    for (int c = kNumJoints - 1; c > 0; --c) first[kParents[c]] = c;
  }
};
const Children kChildren;
}  // namespace

void solve_rotations(const float* positions, const float* rest_offsets, float* local, float* world_out) {
  Quat world[kNumJoints];
  auto P = [&](int j) { return load3(positions + 3 * j); };
  auto R = [&](int j) { return load3(rest_offsets + 3 * j); };
  for (int j = 0; j < kNumJoints; ++j) {
    const int parent = kParents[j];
    const Quat inherited = parent >= 0 ? world[parent] : Quat{};
    Quat g;
    if (j == kHips) {
      g = align_two(R(kSpine), R(kUpperLegL) - R(kUpperLegR), P(kSpine) - P(kHips),
                    P(kUpperLegL) - P(kUpperLegR));
    } else if (j == kChest) {
      g = align_two(R(kNeck), R(kShoulderL) - R(kShoulderR), P(kNeck) - P(kChest),
                    P(kShoulderL) - P(kShoulderR));
    } else if (kChildren.first[j] >= 0) {
      const int c = kChildren.first[j];
      const Vec3 from = rotate(inherited, R(c)), to = P(c) - P(j);
      g = (norm(from) > 1e-9f && norm(to) > 1e-9f) ? normalized(between(from, to) * inherited) : inherited;
    } else {
      g = inherited;
    }
    world[j] = g;
    store4(parent >= 0 ? normalized(conjugate(inherited) * g) : g, local + 4 * j);
  }
  if (world_out) {
    for (int j = 0; j < kNumJoints; ++j) store4(world[j], world_out + 4 * j);
  }
}

void local_to_world(const float* local, float* world) {
  for (int j = 0; j < kNumJoints; ++j) {
    const Quat l = load4(local + 4 * j);
    const int parent = kParents[j];
    store4(parent >= 0 ? normalized(load4(world + 4 * parent) * l) : l, world + 4 * j);
  }
}

void forward_kinematics(const float* root, const float* local, const float* rest_offsets, float* positions) {
  float world[kRotFloats];
  local_to_world(local, world);
  store3(load3(root), positions);
  for (int j = 1; j < kNumJoints; ++j) {
    const int parent = kParents[j];
    const Vec3 p = load3(positions + 3 * parent) + rotate(load4(world + 4 * parent), load3(rest_offsets + 3 * j));
    store3(p, positions + 3 * j);
  }
}

}  // namespace coamd

// ------------------------------------------------------------------------ upright reference pose
namespace coamd {

namespace {
constexpr int kUpperArmL = 6, kLowerArmL = 7, kUpperArmR = 10, kLowerArmR = 11, kLowerLegL = 14,
              kFootL = 15, kToesL = 16, kLowerLegR = 18, kFootR = 19, kToesR = 20;
// Toes (the ball of the foot) 40 degrees below the horizontal from the ankle and 0.375 toe-bone
// lengths above the floor: the medians of the first frames of the dataset's test clips
// (40.1 degrees; ankle 12.0 cm and toes 4.4 cm above the floor for a 11.8 cm toe bone).
constexpr float kToesBelowHorizontalDeg = 40.f;
constexpr float kToesHeightPerToeLength = 0.375f;
// Hinge twist of the limbs, in the local frames of the dataset's BVH skeleton (the frames
// GetSkeleton's rest offsets are given in): the direction, in the upper arm's / thigh's own
// frame, the forearm / shin moves to when the elbow / knee bends (coamd/io/bvh_export.py,
// TWIST_HINTS: forearm on +Z of the left upper arm and -Z of the right; shin on -Z of the left
// thigh and +Z of the right). In the T-pose elbows bend forward and knees backward.
struct Hinge {
  int joint;
  Vec3 local;
  Vec3 world;  // project frame
};
const Hinge kHinges[] = {
    {kUpperArmL, {0.f, 0.f, 1.f}, {0.f, 0.f, 1.f}},
    {kUpperArmR, {0.f, 0.f, -1.f}, {0.f, 0.f, 1.f}},
    {kUpperLegL, {0.f, 0.f, -1.f}, {0.f, 0.f, -1.f}},
    {kUpperLegR, {0.f, 0.f, 1.f}, {0.f, 0.f, -1.f}},
};
}  // namespace

void reference_pose(const float* rest_offsets, float* local, float* positions) {
  const Vec3 up{0.f, 1.f, 0.f}, left{1.f, 0.f, 0.f}, forward{0.f, 0.f, 1.f};
  const float toe_angle = kToesBelowHorizontalDeg * 3.14159265358979f / 180.f;
  const Vec3 toes_dir = normalized(forward * std::cos(toe_angle) - up * std::sin(toe_angle));
  // World direction of the bone from each single-child joint to its child (T-pose).
  Vec3 bone_dir[kNumJoints];
  for (int j = 0; j < kNumJoints; ++j) bone_dir[j] = Vec3{};
  bone_dir[kSpine] = up;
  bone_dir[kNeck] = up;
  bone_dir[kShoulderL] = bone_dir[kUpperArmL] = bone_dir[kLowerArmL] = left;
  bone_dir[kShoulderR] = bone_dir[kUpperArmR] = bone_dir[kLowerArmR] = left * -1.f;
  bone_dir[kUpperLegL] = bone_dir[kLowerLegL] = bone_dir[kUpperLegR] = bone_dir[kLowerLegR] = up * -1.f;
  bone_dir[kFootL] = bone_dir[kFootR] = toes_dir;

  auto R = [&](int j) { return load3(rest_offsets + 3 * j); };
  Quat world[kNumJoints];
  for (int j = 0; j < kNumJoints; ++j) {
    const int parent = kParents[j];
    const Quat inherited = parent >= 0 ? world[parent] : Quat{};
    Quat g = inherited;
    if (j == kHips) {
      g = align_two(R(kSpine), R(kUpperLegL) - R(kUpperLegR), up, left);
    } else if (j == kChest) {
      g = align_two(R(kNeck), R(kShoulderL) - R(kShoulderR), up, left);
    } else if (kChildren.first[j] >= 0 && norm(R(kChildren.first[j])) > 1e-9f) {
      const Vec3 bone = R(kChildren.first[j]);
      const Hinge* hinge = nullptr;
      for (const Hinge& h : kHinges) {
        if (h.joint == j) hinge = &h;
      }
      if (hinge) {
        g = align_two(bone, hinge->local, bone_dir[j], hinge->world);
      } else {
        g = normalized(between(rotate(inherited, bone), bone_dir[j]) * inherited);
      }
    }
    world[j] = g;
    store4(parent >= 0 ? normalized(conjugate(inherited) * g) : g, local + 4 * j);
  }
  // Forward kinematics from the hips at the origin, then lift the toes to their height.
  const float root[3] = {0.f, 0.f, 0.f};
  forward_kinematics(root, local, rest_offsets, positions);
  const float toes_y = std::min(positions[3 * kToesL + 1], positions[3 * kToesR + 1]);
  const float lift = kToesHeightPerToeLength * 0.5f * (norm(R(kToesL)) + norm(R(kToesR))) - toes_y;
  for (int j = 0; j < kNumJoints; ++j) positions[3 * j + 1] += lift;
}

}  // namespace coamd
