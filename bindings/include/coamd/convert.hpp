// Coordinate conversions between the project frame and engine frames (one place, client side).
//
// Project frame (DESIGN.md section 4): metres, right-handed, +Y up, the character starts facing +Z
// with its left side at +X. Unity: metres, left-handed Y up = the project frame with x negated.
// Unreal: centimetres, left-handed Z up, X forward, Y right: (X, Y, Z) = 100 * (z, -x, y).
// Both engine frames are reflections M of the project frame (det M = -1). A rotation R maps to
// M R M^T; for a unit quaternion (v, w) that is (det(M) * M v, w) = (-M v, w).
#pragma once

#include <cstdint>

namespace coamd {

enum class Coords : int32_t { RightHandedYUp = 0, Unity = 1, Unreal = 2 };

bool valid_coords(int32_t c);
// count points (x, y, z); in == out allowed.
void convert_positions(const float* in, int count, Coords from, Coords to, float* out);
// count quaternions (x, y, z, w); in == out allowed.
void convert_rotations(const float* in, int count, Coords from, Coords to, float* out);

}  // namespace coamd
