// The 21-joint skeleton (mirrors coamd/skeleton.py, DESIGN.md section 4) and engine bone names.
#pragma once

#include <cstdint>

namespace coamd {

constexpr int kNumJoints = 21;
constexpr int kPosFloats = kNumJoints * 3;  // 63
constexpr int kRotFloats = kNumJoints * 4;  // 84
constexpr float kFps = 20.f;

// Joint order and parents (-1 for the root); parents always precede their children.
extern const char* const kJointNames[kNumJoints];
extern const int kParents[kNumJoints];
// Unity's HumanBodyBones names (the Humanoid rig) and the Unreal mannequin's bone names.
extern const char* const kUnityHumanoidBones[kNumJoints];
extern const char* const kUnrealBones[kNumJoints];

}  // namespace coamd
