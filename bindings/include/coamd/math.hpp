// Small vector and quaternion functions for the client (header-only, no allocation).
// Quaternions are (x, y, z, w), unit length, Hamilton product; q * v rotates v.
#pragma once

#include <cmath>

namespace coamd {

struct Vec3 {
  float x = 0.f, y = 0.f, z = 0.f;
};
struct Quat {
  float x = 0.f, y = 0.f, z = 0.f, w = 1.f;
};

inline Vec3 load3(const float* p) { return {p[0], p[1], p[2]}; }
inline void store3(const Vec3& v, float* p) { p[0] = v.x; p[1] = v.y; p[2] = v.z; }
inline Quat load4(const float* p) { return {p[0], p[1], p[2], p[3]}; }
inline void store4(const Quat& q, float* p) { p[0] = q.x; p[1] = q.y; p[2] = q.z; p[3] = q.w; }

inline Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline Vec3 operator*(Vec3 a, float s) { return {a.x * s, a.y * s, a.z * s}; }
inline float dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Vec3 cross(Vec3 a, Vec3 b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
inline float norm(Vec3 a) { return std::sqrt(dot(a, a)); }
inline Vec3 normalized(Vec3 a) {
  const float n = norm(a);
  return n > 1e-12f ? a * (1.f / n) : Vec3{};
}

inline Quat operator*(Quat a, Quat b) {
  return {a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
          a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
          a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
          a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z};
}
inline Quat conjugate(Quat q) { return {-q.x, -q.y, -q.z, q.w}; }
inline float dot(Quat a, Quat b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
inline Quat normalized(Quat q) {
  const float n = std::sqrt(dot(q, q));
  if (n < 1e-12f) return Quat{};
  const float s = 1.f / n;
  return {q.x * s, q.y * s, q.z * s, q.w * s};
}
inline Vec3 rotate(Quat q, Vec3 v) {
  // v' = v + 2 w (u x v) + 2 u x (u x v), u = (x, y, z)
  const Vec3 u{q.x, q.y, q.z};
  const Vec3 t = cross(u, v) * 2.f;
  return v + t * q.w + cross(u, t);
}

// The smallest rotation taking direction a to direction b (both non-zero).
inline Quat between(Vec3 a, Vec3 b) {
  a = normalized(a);
  b = normalized(b);
  const float d = dot(a, b);
  if (d < -0.999999f) {
    // Opposite: 180 degrees about any axis orthogonal to a.
    Vec3 axis = cross(Vec3{1.f, 0.f, 0.f}, a);
    if (norm(axis) < 1e-6f) axis = cross(Vec3{0.f, 1.f, 0.f}, a);
    axis = normalized(axis);
    return {axis.x, axis.y, axis.z, 0.f};
  }
  const Vec3 c = cross(a, b);
  return normalized(Quat{c.x, c.y, c.z, 1.f + d});
}

// Rotation matrix (columns c0, c1, c2) -> quaternion (Shepperd's method).
inline Quat from_columns(Vec3 c0, Vec3 c1, Vec3 c2) {
  const float m00 = c0.x, m10 = c0.y, m20 = c0.z;
  const float m01 = c1.x, m11 = c1.y, m21 = c1.z;
  const float m02 = c2.x, m12 = c2.y, m22 = c2.z;
  const float tr = m00 + m11 + m22;
  Quat q;
  if (tr > 0.f) {
    const float s = std::sqrt(tr + 1.f) * 2.f;
    q = {(m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25f * s};
  } else if (m00 > m11 && m00 > m22) {
    const float s = std::sqrt(1.f + m00 - m11 - m22) * 2.f;
    q = {0.25f * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s};
  } else if (m11 > m22) {
    const float s = std::sqrt(1.f + m11 - m00 - m22) * 2.f;
    q = {(m01 + m10) / s, 0.25f * s, (m12 + m21) / s, (m02 - m20) / s};
  } else {
    const float s = std::sqrt(1.f + m22 - m00 - m11) * 2.f;
    q = {(m02 + m20) / s, (m12 + m21) / s, 0.25f * s, (m10 - m01) / s};
  }
  return normalized(q);
}

// The rotation taking the frame of (a0 exactly, b0 in the plane) to that of (a1, b1): the primary
// direction a is matched exactly, the secondary b fixes the twist about it.
inline Quat align_two(Vec3 a0, Vec3 b0, Vec3 a1, Vec3 b1) {
  const Vec3 e0 = normalized(a0), e1 = normalized(a1);
  Vec3 f0 = b0 - e0 * dot(b0, e0), f1 = b1 - e1 * dot(b1, e1);
  if (norm(f0) < 1e-6f || norm(f1) < 1e-6f) return between(a0, a1);
  f0 = normalized(f0);
  f1 = normalized(f1);
  const Vec3 g0 = cross(e0, f0), g1 = cross(e1, f1);
  // R = F1 * F0^T with F = [e f g] (orthonormal columns)
  const Quat q0 = from_columns(e0, f0, g0), q1 = from_columns(e1, f1, g1);
  return normalized(q1 * conjugate(q0));
}

// Spherical interpolation along the shorter arc; t in [0, 1].
inline Quat slerp(Quat a, Quat b, float t) {
  float d = dot(a, b);
  if (d < 0.f) {
    b = {-b.x, -b.y, -b.z, -b.w};
    d = -d;
  }
  if (d > 0.9995f) {  // nearly equal: normalised lerp is accurate and stable
    return normalized(Quat{a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, a.z + (b.z - a.z) * t,
                           a.w + (b.w - a.w) * t});
  }
  const float theta = std::acos(d);
  const float s = std::sin(theta);
  const float wa = std::sin((1.f - t) * theta) / s, wb = std::sin(t * theta) / s;
  return {a.x * wa + b.x * wb, a.y * wa + b.y * wb, a.z * wa + b.z * wb, a.w * wa + b.w * wb};
}

}  // namespace coamd
