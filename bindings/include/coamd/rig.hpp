// Joint positions -> per-joint rotations for a rig, and forward kinematics back.
//
// Rotation of joint j ("world" G_j, relative to the rest pose) is what turns the rest offsets of
// j's children into the posed bone vectors: p[c] = p[j] + G_j * rest[c]. The local rotation is
// L_j = G_parent^-1 * G_j (L_root = G_root). Positions determine each bone's direction but not its
// twist, so the solver (like HumanML3D's inverse kinematics) uses:
//  - Hips and Chest (three children): the first child's bone (Spine / Neck) exactly, twist from
//    the left-right axis (UpperLeg_L - UpperLeg_R / Shoulder_L - Shoulder_R);
//  - single-child joints: the smallest rotation from the inherited orientation to the bone
//    (no added twist);
//  - leaves (Head, Hands, Toes): the parent's orientation (local identity).
// All functions work in any one frame (the math is equivariant under the engine reflections).
#pragma once

namespace coamd {

// positions: 63 floats, rest_offsets: 63 floats (parent-relative; root entry unused).
// local: 84 floats out; world: 84 floats out or nullptr.
void solve_rotations(const float* positions, const float* rest_offsets, float* local, float* world);
// root: 3 floats; local: 84; rest_offsets: 63 -> positions 63.
void forward_kinematics(const float* root, const float* local, const float* rest_offsets, float* positions);
// local (84) -> world (84) by chaining parents.
void local_to_world(const float* local, float* world);
// The upright reference pose (T-pose) of a skeleton, project frame: rest_offsets (63) -> local
// rotations (84) relative to them and joint positions (63) = forward kinematics of those on the
// rest offsets, hips above the origin, facing +Z, left at +X, toes on the floor, arms level to the
// sides, legs straight; Hips and Chest take their twist from the left-right axis, the upper arms
// and thighs from the elbow / knee hinge of the dataset's skeleton (elbows bend forward, knees
// backward), other joints the smallest rotation onto their bone, leaves their parent's.
void reference_pose(const float* rest_offsets, float* local, float* positions);

}  // namespace coamd
