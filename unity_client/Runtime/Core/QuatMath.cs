using System;

namespace CoAMD
{
    /// <summary>Quaternion helpers on flat float arrays (x, y, z, w at offset 4 j), allocation-free.
    /// Hamilton product; q * v rotates v (the same convention as the native library and Unity).</summary>
    public static class QuatMath
    {
        /// <summary>out[o] = a[ia] * b[ib] (out may alias a or b).</summary>
        public static void Mul(float[] a, int ia, float[] b, int ib, float[] o, int io)
        {
            float ax = a[ia], ay = a[ia + 1], az = a[ia + 2], aw = a[ia + 3];
            float bx = b[ib], by = b[ib + 1], bz = b[ib + 2], bw = b[ib + 3];
            o[io] = aw * bx + ax * bw + ay * bz - az * by;
            o[io + 1] = aw * by - ax * bz + ay * bw + az * bx;
            o[io + 2] = aw * bz + ax * by - ay * bx + az * bw;
            o[io + 3] = aw * bw - ax * bx - ay * by - az * bz;
        }

        /// <summary>Rotation about +Y by yaw radians (turns +Z towards +X: Unity's
        /// Quaternion.Euler(0, yaw in degrees, 0)), written at o[io].</summary>
        public static void Yaw(float yaw, float[] o, int io)
        {
            o[io] = 0f;
            o[io + 1] = (float)Math.Sin(0.5 * yaw);
            o[io + 2] = 0f;
            o[io + 3] = (float)Math.Cos(0.5 * yaw);
        }

        /// <summary>Shortest-arc spherical interpolation from a to b by t in [0, 1].</summary>
        public static void Slerp(float[] a, int ia, float[] b, int ib, float t, float[] o, int io)
        {
            float bx = b[ib], by = b[ib + 1], bz = b[ib + 2], bw = b[ib + 3];
            float d = a[ia] * bx + a[ia + 1] * by + a[ia + 2] * bz + a[ia + 3] * bw;
            if (d < 0f)
            {
                bx = -bx; by = -by; bz = -bz; bw = -bw; d = -d;
            }
            float wa, wb;
            if (d > 0.9995f)
            {
                wa = 1f - t;
                wb = t;
            }
            else
            {
                double theta = Math.Acos(d), s = Math.Sin(theta);
                wa = (float)(Math.Sin((1 - t) * theta) / s);
                wb = (float)(Math.Sin(t * theta) / s);
            }
            float x = wa * a[ia] + wb * bx, y = wa * a[ia + 1] + wb * by, z = wa * a[ia + 2] + wb * bz,
                  w = wa * a[ia + 3] + wb * bw;
            float n = (float)Math.Sqrt(x * x + y * y + z * z + w * w);
            if (n < 1e-12f)
            {
                o[io] = o[io + 1] = o[io + 2] = 0f;
                o[io + 3] = 1f;
                return;
            }
            o[io] = x / n; o[io + 1] = y / n; o[io + 2] = z / n; o[io + 3] = w / n;
        }

        /// <summary>Rotates the vector v[iv..iv+2] by q[iq] into o[io] (o may alias v).</summary>
        public static void Rotate(float[] q, int iq, float[] v, int iv, float[] o, int io)
        {
            float x = q[iq], y = q[iq + 1], z = q[iq + 2], w = q[iq + 3];
            float vx = v[iv], vy = v[iv + 1], vz = v[iv + 2];
            float tx = 2f * (y * vz - z * vy), ty = 2f * (z * vx - x * vz), tz = 2f * (x * vy - y * vx);
            o[io] = vx + w * tx + (y * tz - z * ty);
            o[io + 1] = vy + w * ty + (z * tx - x * tz);
            o[io + 2] = vz + w * tz + (x * ty - y * tx);
        }

        /// <summary>Rotation angle (radians) between two unit quaternions.</summary>
        public static double Angle(float[] a, int ia, float[] b, int ib)
        {
            // conj(a) * b, in double: its vector part's length and scalar give the angle precisely
            // near 0 (where acos of the dot product loses it).
            double ax = -a[ia], ay = -a[ia + 1], az = -a[ia + 2], aw = a[ia + 3];
            double bx = b[ib], by = b[ib + 1], bz = b[ib + 2], bw = b[ib + 3];
            double x = aw * bx + ax * bw + ay * bz - az * by;
            double y = aw * by - ax * bz + ay * bw + az * bx;
            double z = aw * bz + ax * by - ay * bx + az * bw;
            double w = aw * bw - ax * bx - ay * by - az * bz;
            return 2.0 * Math.Atan2(Math.Sqrt(x * x + y * y + z * z), Math.Abs(w));
        }

        /// <summary>angle wrapped into (-pi, pi].</summary>
        public static float WrapAngle(float angle)
        {
            double a = Math.IEEERemainder(angle, 2.0 * Math.PI);
            if (a <= -Math.PI) a += 2.0 * Math.PI;
            return (float)a;
        }
    }
}
