// Humanoid retargeting (HumanoidRetarget) on avatars built here, independently of the server's
// skeleton: a hand-measured T-pose with other proportions, posed by forward kinematics with random
// rotations, with and without each of Unity's optional Humanoid bones.
using System;
using System.Collections.Generic;
using CoAMD;
using CoAMD.Native;
using NUnit.Framework;

namespace CoAMD.Tests
{
    /// <summary>A 1.75 m Humanoid in its T-pose (Unity frame: left at -X, facing +Z, metres).</summary>
    static class HandBuiltAvatar
    {
        public static float[] TPose()
        {
            var p = new float[63];
            Set(p, 0, 0f, 1.00f, 0f);        // Hips
            Set(p, 1, 0f, 1.10f, 0.01f);     // Spine
            Set(p, 2, 0f, 1.26f, 0.02f);     // Chest
            Set(p, 3, 0f, 1.49f, 0.00f);     // Neck
            Set(p, 4, 0f, 1.60f, 0.02f);     // Head
            Set(p, 5, -0.03f, 1.44f, 0.01f); // LeftShoulder
            Set(p, 6, -0.17f, 1.44f, 0f);    // LeftUpperArm
            Set(p, 7, -0.44f, 1.44f, 0f);    // LeftLowerArm
            Set(p, 8, -0.70f, 1.44f, 0f);    // LeftHand
            Set(p, 13, -0.09f, 0.95f, 0f);   // LeftUpperLeg
            Set(p, 14, -0.09f, 0.52f, 0.01f);// LeftLowerLeg
            Set(p, 15, -0.09f, 0.09f, -0.01f);// LeftFoot
            Set(p, 16, -0.09f, 0.02f, 0.10f);// LeftToes (32 degrees below the horizontal)
            foreach (int[] lr in new[] { new[] { 5, 9 }, new[] { 6, 10 }, new[] { 7, 11 }, new[] { 8, 12 },
                                         new[] { 13, 17 }, new[] { 14, 18 }, new[] { 15, 19 }, new[] { 16, 20 } })
                Set(p, lr[1], -p[3 * lr[0]], p[3 * lr[0] + 1], p[3 * lr[0] + 2]);
            return p;
        }

        /// <summary>The T-pose without the given joints (NaN x, as the Unity layer reports them).</summary>
        public static float[] Without(float[] pose, params int[] joints)
        {
            var p = (float[])pose.Clone();
            foreach (int j in joints) p[3 * j] = float.NaN;
            return p;
        }

        static void Set(float[] p, int j, float x, float y, float z)
        {
            p[3 * j] = x;
            p[3 * j + 1] = y;
            p[3 * j + 2] = z;
        }
    }

    /// <summary>Quaternions (x, y, z, w) for the tests, independent of the library.</summary>
    static class Q
    {
        public static float[] AxisAngle(double ax, double ay, double az, double angle)
        {
            double n = Math.Sqrt(ax * ax + ay * ay + az * az), s = Math.Sin(angle / 2) / n;
            return new[] { (float)(ax * s), (float)(ay * s), (float)(az * s), (float)Math.Cos(angle / 2) };
        }

        public static float[] Mul(float[] a, float[] b)
        {
            return new[]
            {
                a[3] * b[0] + a[0] * b[3] + a[1] * b[2] - a[2] * b[1],
                a[3] * b[1] - a[0] * b[2] + a[1] * b[3] + a[2] * b[0],
                a[3] * b[2] + a[0] * b[1] - a[1] * b[0] + a[2] * b[3],
                a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2],
            };
        }

        public static float[] At(float[] q84, int j)
        {
            return new[] { q84[4 * j], q84[4 * j + 1], q84[4 * j + 2], q84[4 * j + 3] };
        }

        public static double[] Rotate(float[] q, double[] v)
        {
            float ox, oy, oz;
            Util.Rotate(q, 0, (float)v[0], (float)v[1], (float)v[2], out ox, out oy, out oz);
            return new double[] { ox, oy, oz };
        }

        /// <summary>Rotation angle of a unit quaternion (radians).</summary>
        public static double Angle(float[] q)
        {
            return 2 * Math.Acos(Math.Min(1.0, Math.Abs((double)q[3])));
        }

        public static double[] Sub(float[] p, int a, int b)
        {
            return new double[] { p[3 * a] - p[3 * b], p[3 * a + 1] - p[3 * b + 1], p[3 * a + 2] - p[3 * b + 2] };
        }

        public static double AngleBetween(double[] a, double[] b)
        {
            return Util.Angle((float)a[0], (float)a[1], (float)a[2], (float)b[0], (float)b[1], (float)b[2]);
        }

        /// <summary>v without its component along unit-less axis.</summary>
        public static double[] Flat(double[] v, double[] axis)
        {
            double n = Math.Sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
            double d = (v[0] * axis[0] + v[1] * axis[1] + v[2] * axis[2]) / (n * n);
            return new[] { v[0] - d * axis[0], v[1] - d * axis[1], v[2] - d * axis[2] };
        }
    }

    [TestFixture]
    public class RetargetTests
    {
        const int Hips = 0, Spine = 1, Chest = 2, Neck = 3, Head = 4, ShoulderL = 5, ShoulderR = 9;
        const int FootL = 15, ToesL = 16, FootR = 19, ToesR = 20;

        // Every combination of missing optional bones worth naming.
        static readonly int[][] Missing =
        {
            new int[0], new[] { Chest }, new[] { Neck }, new[] { ShoulderL }, new[] { ShoulderR },
            new[] { ToesL }, new[] { ToesR }, new[] { ShoulderL, ShoulderR }, new[] { Chest, Neck },
            new[] { Chest, ShoulderL, ShoulderR }, new[] { Chest, Neck, ShoulderL, ShoulderR, ToesL, ToesR },
        };

        static string Name(int[] missing)
        {
            if (missing.Length == 0) return "all bones";
            var names = new List<string>();
            foreach (int j in missing) names.Add(Skeleton.HumanoidBones[j]);
            return "without " + string.Join(", ", names.ToArray());
        }

        /// <summary>The upright reference pose of a skeleton unlike the avatar: the native
        /// library's, from rest offsets of other proportions given in rotated local frames.</summary>
        static float[] MotionReference()
        {
            float[] t = HandBuiltAvatar.TPose();
            var rest = new float[63];
            for (int j = 1; j < 21; j++)
                for (int k = 0; k < 3; k++)
                    rest[3 * j + k] = 0.9f * (t[3 * j + k] - t[3 * Skeleton.Parents[j] + k]) * (k == 1 ? 1.1f : 1f);
            return ReferencePose.FromRestOffsets(rest, Coords.Unity).Positions;
        }

        /// <summary>Posed positions: the full avatar turned by random local rotations (forward
        /// kinematics on its own rest pose), the hips moved.</summary>
        static float[] RandomPose(float[] rest, Random rng, double maxAngle)
        {
            var world = new float[21][];
            var p = new float[63];
            for (int j = 0; j < 21; j++)
            {
                float[] local = Q.AxisAngle(rng.NextDouble() - 0.5, rng.NextDouble() - 0.5, rng.NextDouble() - 0.5,
                                            maxAngle * rng.NextDouble());
                int parent = Skeleton.Parents[j];
                world[j] = parent < 0 ? local : Q.Mul(world[parent], local);
                if (parent < 0)
                {
                    p[0] = 0.3f;
                    p[1] = 0.9f;
                    p[2] = -0.2f;
                    continue;
                }
                double[] v = Q.Rotate(world[parent], Q.Sub(rest, j, parent));
                for (int k = 0; k < 3; k++) p[3 * j + k] = p[3 * parent + k] + (float)v[k];
            }
            return p;
        }

        [Test]
        public void AFrameEqualToTheAvatarsRestPoseTurnsNoBone()
        {
            float[] avatar = HandBuiltAvatar.TPose(), reference = MotionReference();
            var rot = new float[84];
            foreach (int[] missing in Missing)
            {
                var r = new HumanoidRetarget(HandBuiltAvatar.Without(avatar, missing), reference);
                r.Solve(avatar, rot);
                for (int j = 0; j < 21; j++)
                {
                    if (!r.Driven[j]) continue;
                    double angle = Q.Angle(Q.At(rot, j));
                    bool toeless = (j == FootL && !r.Driven[ToesL]) || (j == FootR && !r.Driven[ToesR]);
                    if (!toeless)
                    {
                        Assert.Less(angle, 1e-3, Name(missing) + ": " + Skeleton.HumanoidBones[j]);
                        continue;
                    }
                    // Without toes the foot's rest direction is the reference pose's (40 degrees
                    // down); this avatar's toes are 32 degrees down, so the foot turns by the difference.
                    int toe = j + 1;
                    double want = Q.AngleBetween(Q.Sub(avatar, toe, j), Q.Sub(r.RestPositions, toe, j));
                    Assert.AreEqual(want, angle, 2e-3, Name(missing) + ": " + Skeleton.HumanoidBones[j]);
                    Assert.AreEqual(8.0 * Math.PI / 180, want, 2.5 * Math.PI / 180, "32 versus 40 degrees");
                }
            }
        }

        [Test]
        public void EveryAvatarBonePointsAlongTheStreamedSegmentItCarries()
        {
            float[] avatar = HandBuiltAvatar.TPose(), reference = MotionReference();
            var rng = new Random(1234);
            var rot = new float[84];
            int checkedBones = 0;
            double maxLopsided = 0;
            for (int trial = 0; trial < 40; trial++)
            {
                float[] posed = RandomPose(avatar, rng, 1.2);
                foreach (int[] missing in Missing)
                {
                    var r = new HumanoidRetarget(HandBuiltAvatar.Without(avatar, missing), reference);
                    r.Solve(posed, rot);
                    for (int a = 0; a < 21; a++)
                    {
                        if (!r.Driven[a]) continue;
                        List<int> kids = AvatarChildren(r, a);
                        if (kids.Count == 0) continue;
                        float[] g = Q.At(rot, a);
                        // The first child's segment exactly ...
                        double[] got = Q.Rotate(g, Q.Sub(avatar, kids[0], a));
                        double[] want = Q.Sub(posed, kids[0], a);
                        Assert.Less(Q.AngleBetween(got, want), 2e-3,
                                    Name(missing) + ": " + Skeleton.HumanoidBones[a] + " -> " +
                                    Skeleton.HumanoidBones[kids[0]] + ", trial " + trial);
                        checkedBones++;
                        // ... and with three children (hips, chest or the spine carrying the chest's
                        // children) the left-right line about it: the twist.
                        if (kids.Count == 3)
                        {
                            double[] gotLR = Q.Rotate(g, Q.Sub(avatar, kids[1], kids[2]));
                            double[] wantLR = Q.Sub(posed, kids[1], kids[2]);
                            double twist = Q.AngleBetween(Q.Flat(gotLR, want), Q.Flat(wantLR, want));
                            // One shoulder missing: the line from one upper arm to the other
                            // shoulder is not the shoulder line the twist is measured on.
                            bool lopsided = r.Driven[ShoulderL] != r.Driven[ShoulderR] && a != Hips;
                            if (lopsided) maxLopsided = Math.Max(maxLopsided, twist);
                            Assert.Less(twist, lopsided ? 0.1 : 2e-3,
                                        Name(missing) + ": twist of " + Skeleton.HumanoidBones[a] + ", trial " + trial);
                        }
                    }
                }
            }
            Assert.Greater(checkedBones, 40 * 11 * 12);
            Console.WriteLine("largest twist error with one shoulder missing: {0:F4} rad", maxLopsided);
        }

        /// <summary>The avatar's child bones of a (nearest present joints below it), first child first.</summary>
        static List<int> AvatarChildren(HumanoidRetarget r, int a)
        {
            var kids = new List<int>();
            for (int c = 0; c < 21; c++)
            {
                if (!r.Driven[c] || c == a) continue;
                int p = Skeleton.Parents[c];
                while (p >= 0 && !r.Driven[p]) p = Skeleton.Parents[p];
                if (p == a) kids.Add(c);
            }
            // A missing Chest: the Spine's children are Neck (or Head) and the shoulders (or arms).
            return kids;
        }

        [Test]
        public void MissingBonesAreFilledWhereTheAvatarWouldHaveThem()
        {
            float[] avatar = HandBuiltAvatar.TPose(), reference = MotionReference();
            var r = new HumanoidRetarget(HandBuiltAvatar.Without(avatar, Chest, Neck, ToesL), reference);
            float[] p = r.RestPositions;
            // Chest and Neck lie on the avatar's spine-to-head segment, in the order of the skeleton.
            double[] spineHead = Q.Sub(p, Head, Spine);
            Assert.Less(Q.AngleBetween(Q.Sub(p, Chest, Spine), spineHead), 1e-4);
            Assert.Less(Q.AngleBetween(Q.Sub(p, Neck, Chest), spineHead), 1e-4);
            Assert.Greater(p[3 * Neck + 1], p[3 * Chest + 1]);
            // Toes: in front of the foot, below it, 40 degrees down.
            double[] toe = Q.Sub(p, ToesL, FootL);
            Assert.Greater(toe[2], 0.0);
            Assert.AreEqual(40.0, Math.Atan2(-toe[1], Math.Sqrt(toe[0] * toe[0] + toe[2] * toe[2])) * 180 / Math.PI, 0.1);
            // Present bones keep the avatar's own positions.
            for (int j = 0; j < 21; j++)
                if (r.Driven[j]) Assert.AreEqual(avatar[3 * j + 1], p[3 * j + 1], 0f);
            Assert.AreEqual(Length(avatar, 13, 14) + Length(avatar, 14, 15), r.HipsScale *
                            (Length(reference, 13, 14) + Length(reference, 14, 15)), 1e-5);
        }

        [Test]
        public void RequiredBonesMustExistAndSolveAllocatesNothing()
        {
            float[] avatar = HandBuiltAvatar.TPose(), reference = MotionReference();
            foreach (int required in new[] { Hips, Spine, Head, 6, 7, 8, 13, 14, FootL })
            {
                var e = Assert.Throws<ArgumentException>(() =>
                    new HumanoidRetarget(HandBuiltAvatar.Without(avatar, required), reference));
                StringAssert.Contains(Skeleton.HumanoidBones[required], e.Message);
            }
            var r = new HumanoidRetarget(HandBuiltAvatar.Without(avatar, Chest, ToesR), reference);
            float[] posed = RandomPose(avatar, new Random(3), 0.8);
            var rot = new float[84];
            for (int i = 0; i < 10; i++) r.Solve(posed, rot);
            long before = GC.GetTotalMemory(false);
            for (int i = 0; i < 5000; i++) r.Solve(posed, rot);
            Assert.Less(GC.GetTotalMemory(false) - before, 8 * 1024, "Solve() must not allocate");
        }

        static double Length(float[] p, int a, int b)
        {
            double x = p[3 * a] - p[3 * b], y = p[3 * a + 1] - p[3 * b + 1], z = p[3 * a + 2] - p[3 * b + 2];
            return Math.Sqrt(x * x + y * y + z * z);
        }
    }
}
