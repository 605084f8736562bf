#include "coamd/rig.hpp"

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
