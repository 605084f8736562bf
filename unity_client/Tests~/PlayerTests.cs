// The player's engine-independent parts without a server: root motion with heading, blending
// between prompts, asynchronous connection, the source skeleton and baked motions.
using System;
using System.Diagnostics;
using CoAMD;
using CoAMD.Native;
using NUnit.Framework;

namespace CoAMD.Tests
{
    /// <summary>Synthetic streamed poses: the hand-built avatar's T-pose placed with its hips at
    /// (x, z) on the floor and turned to a heading (Unity yaw).</summary>
    static class Poses
    {
        static readonly float[] Body = HandBuiltAvatar.TPose();

        public static void Place(float x, float z, float yaw, float[] positions63)
        {
            float c = (float)Math.Cos(yaw), s = (float)Math.Sin(yaw);
            for (int j = 0; j < 21; j++)
            {
                float bx = Body[3 * j] - Body[0], bz = Body[3 * j + 2] - Body[2];
                positions63[3 * j] = x + c * bx + s * bz;  // rotation about +Y by yaw
                positions63[3 * j + 1] = Body[3 * j + 1];
                positions63[3 * j + 2] = z - s * bx + c * bz;
            }
        }
    }

    [TestFixture]
    public class RootMotionTests
    {
        [Test]
        public void YawConventionIsUnitys()
        {
            var q = new float[4];
            var v = new float[] { 0f, 0f, 1f };
            var o = new float[3];
            QuatMath.Yaw((float)(Math.PI / 2), q, 0);
            QuatMath.Rotate(q, 0, v, 0, o, 0);
            Assert.AreEqual(1f, o[0], 1e-6f, "a positive yaw turns +Z towards +X");
            var p = new float[63];
            Poses.Place(0f, 0f, 0.7f, p);
            Assert.AreEqual(0.7f, RootMotion.Facing(p), 1e-5f);
            Poses.Place(0f, 0f, 0f, p);
            Assert.AreEqual(0f, RootMotion.Facing(p), 1e-6f, "the T-pose faces +Z");
        }

        [Test]
        public void DeltasRebuildTheRootPathAndThePoseSitsOnTheRoot()
        {
            // A walk along a curve with the hips swaying sideways and the pelvis swinging.
            var rm = new RootMotion();
            var p = new float[63];
            var original = new float[63];
            double charX = 0, charZ = 0, charYaw = 0;
            bool first = true;
            for (int tick = 0; tick <= 600; tick++)
            {
                double t = tick / 60.0;
                float heading = (float)(0.4 * t), sway = (float)(0.03 * Math.Sin(2 * Math.PI * t));
                float x = (float)(1.5 * Math.Sin(0.4 * t) / 0.4 * 0.9) + sway, z = (float)(1.5 * (1 - Math.Cos(0.4 * t)) / 0.4 * -0.1 + 1.4 * t);
                Poses.Place(x, z, heading + (float)(0.12 * Math.Sin(2 * Math.PI * t)), p);
                Array.Copy(p, original, 63);
                rm.Process(t, p, null, null);
                if (first)
                {
                    charX = rm.RootX;
                    charZ = rm.RootZ;
                    charYaw = rm.RootYaw;
                    first = false;
                }
                else
                {
                    // An engine moving its character by the deltas in the character's own frame.
                    double c = Math.Cos(charYaw), s = Math.Sin(charYaw);
                    charX += c * rm.DeltaX + s * rm.DeltaZ;
                    charZ += -s * rm.DeltaX + c * rm.DeltaZ;
                    charYaw += rm.DeltaYaw;
                }
                Assert.AreEqual(rm.RootX, charX, 1e-3, "tick " + tick);
                Assert.AreEqual(rm.RootZ, charZ, 1e-3, "tick " + tick);
                Assert.AreEqual(rm.RootYaw, charYaw, 1e-4, "tick " + tick);
                // The root-relative pose placed at the character gives the streamed pose back.
                double cc = Math.Cos(charYaw), ss = Math.Sin(charYaw);
                for (int j = 0; j < 21; j++)
                {
                    double wx = charX + cc * p[3 * j] + ss * p[3 * j + 2];
                    double wz = charZ - ss * p[3 * j] + cc * p[3 * j + 2];
                    Assert.AreEqual(original[3 * j], wx, 2e-3, "joint " + j + " x, tick " + tick);
                    Assert.AreEqual(original[3 * j + 2], wz, 2e-3, "joint " + j + " z, tick " + tick);
                    Assert.AreEqual(original[3 * j + 1], p[3 * j + 1], 0f);
                }
            }
        }

        [Test]
        public void SwayStaysInThePoseWhileTravelAndTurnsMoveTheRoot()
        {
            var rm = new RootMotion();
            var p = new float[63];
            double minX = 0, maxX = 0, minYaw = 0, maxYaw = 0;
            for (int tick = 0; tick <= 60 * 8; tick++)
            {
                double t = tick / 60.0;
                Poses.Place((float)(0.03 * Math.Sin(2 * Math.PI * t)), (float)(1.4 * t),
                            (float)(0.12 * Math.Sin(2 * Math.PI * t)), p);
                rm.Process(t, p, null, null);
                if (t < 3) continue;  // settled
                minX = Math.Min(minX, rm.RootX);
                maxX = Math.Max(maxX, rm.RootX);
                minYaw = Math.Min(minYaw, rm.RootYaw);
                maxYaw = Math.Max(maxYaw, rm.RootYaw);
                // Travel: the root follows 1.4 m/s with the filter's lag (about 1.4 x 0.2 s).
                Assert.AreEqual(1.4 * t - 1.4 * rm.PositionSmoothingSeconds, rm.RootZ, 0.03, "t " + t);
            }
            // A first-order filter at 1 Hz with a 0.2 s time constant passes 1 / sqrt(1 + (2 pi 0.2)^2) = 0.62.
            Assert.Less((maxX - minX) / 2, 0.03 * 0.65, "the hips' 3 cm sway is damped in the root");
            Assert.Less((maxYaw - minYaw) / 2, 0.12 * 0.65, "the pelvis's swing is damped in the heading");

            // Turning on the spot twice: the heading follows continuously through +-pi.
            rm.Reset();
            double lastYaw = 0;
            for (int tick = 0; tick <= 600; tick++)
            {
                double t = tick / 60.0, yaw = 4 * Math.PI * t / 10.0;
                Poses.Place(0f, 0f, (float)yaw, p);
                rm.Process(t, p, null, null);
                if (tick > 0) Assert.Less(Math.Abs(rm.RootYaw - lastYaw), 0.05, "no jump at tick " + tick);
                lastYaw = rm.RootYaw;
            }
            // Two full turns, less the filter's lag (turn rate x time constant).
            Assert.AreEqual(4 * Math.PI - 0.4 * Math.PI * rm.HeadingSmoothingSeconds, lastYaw, 0.02, "two full turns");
        }

        [Test]
        public void InPlaceKeepsTheHipsAboveTheRootAndReportsNothing()
        {
            var rm = new RootMotion { Enabled = false };
            var p = new float[63];
            var local = new float[84];
            for (int j = 0; j < 21; j++) local[4 * j + 3] = 1f;
            for (int tick = 0; tick < 120; tick++)
            {
                double t = tick / 60.0;
                Poses.Place(0.5f + (float)t, 2f * (float)t, 0.3f + (float)t, p);
                QuatMath.Yaw(0.3f + (float)t, local, 0);
                rm.Process(t, p, local, null);
                Assert.AreEqual(0f, rm.DeltaX);
                Assert.AreEqual(0f, rm.DeltaZ);
                Assert.AreEqual(0f, rm.DeltaYaw);
                Assert.AreEqual(0f, p[0], 1e-5f);
                Assert.AreEqual(0f, p[2], 1e-5f);
                // The hips keep the turn relative to the first heading (it shows in the pose).
                var want = new float[4];
                QuatMath.Yaw((float)t, want, 0);
                Assert.Less(QuatMath.Angle(local, 0, want, 0), 1e-4);
            }
        }

        [Test]
        public void ProcessAllocatesNothing()
        {
            var rm = new RootMotion();
            var p = new float[63];
            var local = new float[84];
            var world = new float[84];
            for (int i = 0; i < 10; i++) rm.Process(i / 60.0, p, local, world);
            long before = GC.GetTotalMemory(false);
            for (int i = 10; i < 20000; i++)
            {
                Poses.Place(i * 0.001f, 0f, 0f, p);
                rm.Process(i / 60.0, p, local, world);
            }
            Assert.Less(GC.GetTotalMemory(false) - before, 8 * 1024);
        }
    }

    [TestFixture]
    public class PoseBlenderTests
    {
        static float[] RandomLocal(Random rng)
        {
            var q = new float[84];
            for (int j = 0; j < 21; j++)
            {
                float[] r = Q.AxisAngle(rng.NextDouble() - 0.5, rng.NextDouble() - 0.5, rng.NextDouble() - 0.5,
                                        2.5 * rng.NextDouble());
                Array.Copy(r, 0, q, 4 * j, 4);
            }
            return q;
        }

        [Test]
        public void StartsOnTheOldPoseEndsOnTheNewAndNeverJumps()
        {
            var rng = new Random(5);
            float[] a = RandomLocal(rng), b = RandomLocal(rng);
            var hipsA = new float[] { 0.1f, 0.95f, -0.05f };
            var hipsB = new float[] { -0.05f, 0.85f, 0.02f };
            var blender = new PoseBlender { BlendSeconds = 0.3f };
            blender.Capture(a, hipsA);
            Assert.IsTrue(blender.Active);
            var outQ = new float[84];
            var outH = new float[3];
            var prev = new float[84];
            double maxStep = 0;
            for (int tick = 0; tick <= 40; tick++)
            {
                Array.Copy(b, outQ, 84);
                Array.Copy(hipsB, outH, 3);
                blender.Apply(outQ, outH, tick == 0 ? 0.0 : 1.0 / 60.0);
                if (tick == 0)
                {
                    for (int j = 0; j < 21; j++) Assert.Less(QuatMath.Angle(outQ, 4 * j, a, 4 * j), 1e-3, "joint " + j);
                    for (int k = 0; k < 3; k++) Assert.AreEqual(hipsA[k], outH[k], 1e-6f);
                }
                else
                {
                    for (int j = 0; j < 21; j++) maxStep = Math.Max(maxStep, QuatMath.Angle(outQ, 4 * j, prev, 4 * j));
                }
                Array.Copy(outQ, prev, 84);
            }
            // After 0.3 s (18 ticks) and beyond: the new pose exactly.
            Assert.IsFalse(blender.Active);
            for (int j = 0; j < 21; j++) Assert.Less(QuatMath.Angle(outQ, 4 * j, b, 4 * j), 1e-6, "joint " + j);
            for (int k = 0; k < 3; k++) Assert.AreEqual(hipsB[k], outH[k], 0f);
            // The largest per-tick turn of any joint: at most the steepest part of the curve
            // (1.875 x the offset per blend time) for offsets of up to pi.
            Assert.Less(maxStep, Math.PI * 1.875 / 18 + 1e-3);
        }

        [Test]
        public void ZeroBlendTimeCutsAndApplyAllocatesNothing()
        {
            var rng = new Random(9);
            float[] a = RandomLocal(rng), b = RandomLocal(rng);
            var hips = new float[3];
            var cut = new PoseBlender { BlendSeconds = 0f };
            cut.Capture(a, hips);
            Assert.IsFalse(cut.Active);
            var q = (float[])b.Clone();
            cut.Apply(q, hips, 0.0);
            Assert.AreEqual(b, q);

            var blender = new PoseBlender { BlendSeconds = 1000f };
            blender.Capture(a, hips);
            var work = (float[])b.Clone();
            blender.Apply(work, hips, 0.0);
            long before = GC.GetTotalMemory(false);
            for (int i = 0; i < 20000; i++)
            {
                Array.Copy(b, work, 84);
                blender.Apply(work, hips, 0.001);
            }
            Assert.Less(GC.GetTotalMemory(false) - before, 8 * 1024);
        }
    }

    [TestFixture]
    public class ConnectionAndAssetTests
    {
        [Test]
        public void ConnectingNeverBlocksTheCallerAndReportsFailure()
        {
            var sw = Stopwatch.StartNew();
            using (var c = new AsyncConnection("127.0.0.1:9", false, null, null, 1.0f))
            {
                long ms = sw.ElapsedMilliseconds;
                Assert.Less(ms, 200, "the constructor returns at once");
                Assert.AreEqual(ConnectionStatus.Connecting, c.Status);
                Assert.IsNull(c.Client);
                Assert.IsTrue(c.Task.Wait(10000));
                Assert.AreEqual(ConnectionStatus.Failed, c.Status);
                Assert.AreEqual(Status.Connect, c.FailureStatus);
                StringAssert.Contains("GetSkeleton on 127.0.0.1:9", c.Error);
                Assert.IsNull(c.Client);
            }
            // Disposed while connecting: the attempt ends quietly, nothing leaks out.
            var d = new AsyncConnection("127.0.0.1:9", false, null, null, 0.5f);
            d.Dispose();
            Assert.AreEqual(ConnectionStatus.Disposed, d.Status);
            Assert.IsTrue(d.Task.Wait(10000));
            Assert.AreEqual(ConnectionStatus.Disposed, d.Status);
            Assert.IsNull(d.Client);
            Assert.Throws<ArgumentException>(() => new AsyncConnection(""));
        }

        [Test]
        public void SourceSkeletonHierarchyStandsInTheReferencePose()
        {
            float[] t = HandBuiltAvatar.TPose();
            var rest = new float[63];
            for (int j = 1; j < 21; j++)
                for (int k = 0; k < 3; k++) rest[3 * j + k] = t[3 * j + k] - t[3 * Skeleton.Parents[j] + k];
            var src = new SourceSkeleton(ReferencePose.FromRestOffsets(rest, Coords.Unity));
            Assert.AreEqual("Hips", src.Paths[0]);
            Assert.AreEqual("Hips/Spine/Chest/Shoulder_L/UpperArm_L/LowerArm_L/Hand_L", src.Paths[8]);
            Assert.AreEqual("Hips/UpperLeg_R/LowerLeg_R/Foot_R/Toes_R", src.Paths[20]);
            // The transforms as Unity would chain them: world = parent world * local.
            var world = new float[84];
            var pos = new float[63];
            var lp = new float[3];
            var lq = new float[4];
            for (int j = 0; j < 21; j++)
            {
                src.LocalPosition(j, out lp[0], out lp[1], out lp[2]);
                src.LocalRotation(j, out lq[0], out lq[1], out lq[2], out lq[3]);
                int p = Skeleton.Parents[j];
                if (p < 0)
                {
                    Array.Copy(lq, 0, world, 0, 4);
                    Array.Copy(lp, 0, pos, 0, 3);
                    continue;
                }
                QuatMath.Mul(world, 4 * p, lq, 0, world, 4 * j);
                var r = new float[3];
                QuatMath.Rotate(world, 4 * p, lp, 0, r, 0);
                for (int k = 0; k < 3; k++) pos[3 * j + k] = pos[3 * p + k] + r[k];
            }
            for (int k = 0; k < 63; k++) Assert.AreEqual(src.Reference.Positions[k], pos[k], 1e-4f, "float " + k);
            Assert.Throws<ArgumentException>(() =>
                new SourceSkeleton(ReferencePose.FromRestOffsets(rest, Coords.RightHandedYUp)));
        }

        [Test]
        public void BakedQuaternionsAreContinuous()
        {
            var m = new BakedMotion(30);
            var rng = new Random(2);
            for (int i = 0; i < 30; i++)
                for (int j = 0; j < 21; j++)
                {
                    float[] q = Q.AxisAngle(1, 0.5, 0, 0.1 * i + j);
                    float sign = rng.Next(2) == 0 ? -1f : 1f;  // the same rotation, either sign
                    for (int k = 0; k < 4; k++) m.LocalRotations[84 * i + 4 * j + k] = sign * q[k];
                }
            m.MakeQuaternionsContinuous();
            for (int i = 1; i < 30; i++)
                for (int j = 0; j < 21; j++)
                {
                    float d = 0f;
                    for (int k = 0; k < 4; k++) d += m.LocalRotations[84 * i + 4 * j + k] * m.LocalRotations[84 * (i - 1) + 4 * j + k];
                    Assert.Greater(d, 0.9f, "frame " + i + " joint " + j);
                }
            Assert.AreEqual(29 / 20f, m.DurationSeconds, 1e-6f);
            Assert.AreEqual(30, m.RotationCurve(3, 2).Length);
            Assert.Throws<ArgumentOutOfRangeException>(() => new BakedMotion(0));
        }
    }
}
