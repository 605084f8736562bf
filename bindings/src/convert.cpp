#include "coamd/convert.hpp"

#include "coamd/skeleton.hpp"

namespace coamd {

const char* const kJointNames[kNumJoints] = {
    "Hips", "Spine", "Chest", "Neck", "Head",
    "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L",
    "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R",
    "UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L",
    "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R"};
const int kParents[kNumJoints] = {-1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19};
const char* const kUnityHumanoidBones[kNumJoints] = {
    "Hips", "Spine", "Chest", "Neck", "Head",
    "LeftShoulder", "LeftUpperArm", "LeftLowerArm", "LeftHand",
    "RightShoulder", "RightUpperArm", "RightLowerArm", "RightHand",
    "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "LeftToes",
    "RightUpperLeg", "RightLowerLeg", "RightFoot", "RightToes"};
const char* const kUnrealBones[kNumJoints] = {
    "pelvis", "spine_01", "spine_03", "neck_01", "head",
    "clavicle_l", "upperarm_l", "lowerarm_l", "hand_l",
    "clavicle_r", "upperarm_r", "lowerarm_r", "hand_r",
    "thigh_l", "calf_l", "foot_l", "ball_l",
    "thigh_r", "calf_r", "foot_r", "ball_r"};

bool valid_coords(int32_t c) { return c >= 0 && c <= 2; }

namespace {
// Project frame -> target, and back, for one point.
inline void pos_to(const float* p, Coords c, float* o) {
  const float x = p[0], y = p[1], z = p[2];
  switch (c) {
    case Coords::RightHandedYUp: o[0] = x; o[1] = y; o[2] = z; break;
    case Coords::Unity: o[0] = -x; o[1] = y; o[2] = z; break;
    case Coords::Unreal: o[0] = 100.f * z; o[1] = -100.f * x; o[2] = 100.f * y; break;
  }
}
inline void pos_from(const float* p, Coords c, float* o) {
  const float a = p[0], b = p[1], d = p[2];
  switch (c) {
    case Coords::RightHandedYUp: o[0] = a; o[1] = b; o[2] = d; break;
    case Coords::Unity: o[0] = -a; o[1] = b; o[2] = d; break;
    case Coords::Unreal: o[0] = -0.01f * b; o[1] = 0.01f * d; o[2] = 0.01f * a; break;
  }
}
// Quaternion vector part: v' = -M v (M the point map without the unit scale).
inline void rot_to(const float* q, Coords c, float* o) {
  const float x = q[0], y = q[1], z = q[2], w = q[3];
  switch (c) {
    case Coords::RightHandedYUp: o[0] = x; o[1] = y; o[2] = z; break;
    case Coords::Unity: o[0] = x; o[1] = -y; o[2] = -z; break;        // -(-x, y, z)
    case Coords::Unreal: o[0] = -z; o[1] = x; o[2] = -y; break;       // -(z, -x, y)
  }
  o[3] = w;
}
inline void rot_from(const float* q, Coords c, float* o) {
  const float a = q[0], b = q[1], d = q[2], w = q[3];
  switch (c) {
    case Coords::RightHandedYUp: o[0] = a; o[1] = b; o[2] = d; break;
    case Coords::Unity: o[0] = a; o[1] = -b; o[2] = -d; break;
    case Coords::Unreal: o[0] = b; o[1] = -d; o[2] = -a; break;       // inverse of the above
  }
  o[3] = w;
}
}  // namespace

void convert_positions(const float* in, int count, Coords from, Coords to, float* out) {
  for (int i = 0; i < count; ++i) {
    float tmp[3] = {0.f, 0.f, 0.f};
    pos_from(in + 3 * i, from, tmp);
    pos_to(tmp, to, out + 3 * i);
  }
}

void convert_rotations(const float* in, int count, Coords from, Coords to, float* out) {
  for (int i = 0; i < count; ++i) {
    float tmp[4] = {0.f, 0.f, 0.f, 1.f};
    rot_from(in + 4 * i, from, tmp);
    rot_to(tmp, to, out + 4 * i);
  }
}

}  // namespace coamd
