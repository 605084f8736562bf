// NUnit 2.6 tests of the engine-independent C# (compiled with Mono's mcs, C# 7.2) against the real
// native library (libcoamd_client) and, for the fixtures in category "Server", a real
// `coamd serve` whose address is in COAMD_TEST_SERVER. ctest runs the others (csharp_nunit_core,
// and unity_package_check against the packaged plugin); tests/test_bindings_e2e.py starts a
// server and runs them all.
using System;
using System.Collections.Generic;
using CoAMD;
using CoAMD.Native;
using NUnit.Framework;

namespace CoAMD.Tests
{
    static class Util
    {
        public static string Server
        {
            get
            {
                string s = Environment.GetEnvironmentVariable("COAMD_TEST_SERVER");
                if (string.IsNullOrEmpty(s)) Assert.Ignore("COAMD_TEST_SERVER is not set (no server to test against)");
                return s;
            }
        }

        public static MotionRequest Fast(float seconds, ulong seed, Coords coords)
        {
            return new MotionRequest
            {
                DurationSeconds = seconds, Seed = seed, Guidance = Guidance.Off, Coordinates = coords,
                BufferingDelaySeconds = 0.2f, Iterations = 2, OdeSteps = 2,  // few iterations: fast on 2 cores
            };
        }

        // v rotated by unit quaternion q[4j..4j+3]
        public static void Rotate(float[] q, int j, float vx, float vy, float vz, out float ox, out float oy, out float oz)
        {
            float x = q[4 * j], y = q[4 * j + 1], z = q[4 * j + 2], w = q[4 * j + 3];
            float tx = 2f * (y * vz - z * vy), ty = 2f * (z * vx - x * vz), tz = 2f * (x * vy - y * vx);
            ox = vx + w * tx + (y * tz - z * ty);
            oy = vy + w * ty + (z * tx - x * tz);
            oz = vz + w * tz + (x * ty - y * tx);
        }

        public static double Distance(float[] p, int a, int b)
        {
            double x = p[3 * a] - p[3 * b], y = p[3 * a + 1] - p[3 * b + 1], z = p[3 * a + 2] - p[3 * b + 2];
            return Math.Sqrt(x * x + y * y + z * z);
        }

        public static double Angle(float ax, float ay, float az, float bx, float by, float bz)
        {
            double na = Math.Sqrt(ax * ax + ay * ay + az * az), nb = Math.Sqrt(bx * bx + by * by + bz * bz);
            double c = (ax * bx + ay * by + az * bz) / (na * nb);
            return Math.Acos(Math.Max(-1.0, Math.Min(1.0, c)));
        }

        // All frames of a finished stream.
        public static List<float[]> Frames(MotionStream s)
        {
            var list = new List<float[]>();
            for (int i = 0; ; i++)
            {
                var p = new float[63];
                if (!s.Frame(i, p, null)) break;
                list.Add(p);
            }
            return list;
        }
    }

    [TestFixture]
    public class NativeLibraryTests
    {
        [Test]
        public void AbiVersionAndSkeletonTablesMatchTheNativeLibrary()
        {
            Assert.AreEqual(CoamdNative.AbiVersion, CoamdNative.coamd_abi_version());
            Assert.IsNull(Skeleton.VerifyAgainstNative());
            Assert.AreEqual(6, Skeleton.JointOfHumanoidBone("LeftUpperArm"));
            Assert.AreEqual(-1, Skeleton.JointOfHumanoidBone("LeftEye"));
            Assert.IsTrue(Skeleton.IsOptionalHumanoidBone(16));   // LeftToes
            Assert.IsFalse(Skeleton.IsOptionalHumanoidBone(15));  // LeftFoot
        }

        [Test]
        public void UnityFrameNegatesXAndUnrealIsZUpCentimetres()
        {
            var left = new float[] { 1f, 0f, 0f, 0f, 1f, 0f };  // project left (+X), up (+Y)
            var o = new float[6];
            Assert.AreEqual(0, CoamdNative.coamd_convert_positions(left, 2, (int)Coords.RightHandedYUp, (int)Coords.Unity, o));
            Assert.AreEqual(new float[] { -1f, 0f, 0f, 0f, 1f, 0f }, o);
            Assert.AreEqual(0, CoamdNative.coamd_convert_positions(left, 2, (int)Coords.RightHandedYUp, (int)Coords.Unreal, o));
            Assert.AreEqual(new float[] { 0f, -100f, 0f, 0f, 0f, 100f }, o);
        }

        [Test]
        public void UnreachableServerRaisesConnectWithAMessage()
        {
            var e = Assert.Throws<CoamdException>(() => new MotionClient("127.0.0.1:9", false, null, null, 0.5f));
            Assert.AreEqual(Status.Connect, e.Status);
            StringAssert.Contains("GetSkeleton", e.Message);
        }

        [Test]
        public void StructSizesMatchTheNativeLayout()
        {
            // The sizes of the ABI version 3 structs (coamd_client.h static_asserts the same).
            Assert.AreEqual(16, System.Runtime.InteropServices.Marshal.SizeOf(typeof(ClientOptions)));
            Assert.AreEqual(88, System.Runtime.InteropServices.Marshal.SizeOf(typeof(RequestStruct)));
            Assert.AreEqual(32, System.Runtime.InteropServices.Marshal.SizeOf(typeof(SampleInfo)));
            Assert.AreEqual(104, System.Runtime.InteropServices.Marshal.SizeOf(typeof(StreamInfo)));
            Assert.AreEqual(72, System.Runtime.InteropServices.Marshal.SizeOf(typeof(FrameInfo)));
            Assert.AreEqual(32, System.Runtime.InteropServices.Marshal.SizeOf(typeof(CapabilitiesStruct)));
            Assert.AreEqual(344, System.Runtime.InteropServices.Marshal.SizeOf(typeof(CapabilityStruct)));
            Assert.AreEqual(3684, System.Runtime.InteropServices.Marshal.SizeOf(typeof(InterpretationStruct)));
            Assert.AreEqual(72, System.Runtime.InteropServices.Marshal.SizeOf(typeof(SessionOptionsStruct)));
            Assert.AreEqual(64, System.Runtime.InteropServices.Marshal.OffsetOf(typeof(SessionOptionsStruct), "HistoryFrames").ToInt32());
            Assert.AreEqual(24, System.Runtime.InteropServices.Marshal.SizeOf(typeof(SessionEventStruct)));
            Assert.AreEqual(16, System.Runtime.InteropServices.Marshal.OffsetOf(typeof(FrameInfo), "MotionTimeS").ToInt32());
        }

        [Test]
        public void VersionsOfTheLoadedLibrary()
        {
            Assert.AreEqual(5, CoamdLibrary.AbiVersion);
            Assert.AreEqual("0.4.0", CoamdLibrary.Version);
            StringAssert.StartsWith("coamd_client 0.4.0 (ABI 5; gRPC ", CoamdLibrary.BuildInfo);
        }

        [Test]
        public void LogHandlerReceivesTheLibrarysMessagesUntilRemoved()
        {
            var lines = new List<string>();
            CoamdLibrary.SetLogHandler((level, message) => { lock (lines) lines.Add(level + ": " + message); },
                                       LogLevel.Warning);
            try
            {
                Assert.Throws<CoamdException>(() => new MotionClient("127.0.0.1:9", false, null, null, 0.3f));
            }
            finally
            {
                CoamdLibrary.SetLogHandler(null, LogLevel.Off);
            }
            lock (lines)
            {
                Assert.IsTrue(lines.Exists(l => l.StartsWith("Warning: connect: GetSkeleton on 127.0.0.1:9 failed")),
                              string.Join("\n", lines.ToArray()));
                int n = lines.Count;
                Assert.Throws<CoamdException>(() => new MotionClient("127.0.0.1:9", false, null, null, 0.3f));
                Assert.AreEqual(n, lines.Count, "no call after the handler was removed");
            }
            CoamdLibrary.SetLogHandler(null, LogLevel.Error);
        }

        [Test]
        public void ReferencePoseIsUprightInUnitysFrame()
        {
            // Rest offsets of the hand-built avatar (parent-relative, world axes).
            var rest = new float[63];
            float[] dirs = HandBuiltAvatar.TPose();
            for (int j = 1; j < 21; j++)
                for (int k = 0; k < 3; k++)
                    rest[3 * j + k] = dirs[3 * j + k] - dirs[3 * Skeleton.Parents[j] + k];
            ReferencePose p = ReferencePose.FromRestOffsets(rest, Coords.Unity);
            float[] q = p.Positions;
            Assert.AreEqual(0f, q[0], 1e-5f);
            Assert.AreEqual(0f, q[2], 1e-5f);
            Assert.Less(q[3 * 8], -0.5f, "the left hand is at -X in Unity's frame");
            Assert.Greater(q[3 * 12], 0.5f);
            Assert.Greater(q[3 * 16 + 2], q[3 * 15 + 2], "toes point forward (+Z)");
            Assert.Greater(q[3 * 4 + 1], q[3 * 0 + 1] + 0.4f, "the head is above the hips");
            var fk = new float[63];
            CoamdNative.coamd_forward_kinematics(new[] { q[0], q[1], q[2] }, p.LocalRotations, p.RestOffsets, fk);
            for (int k = 0; k < 63; k++) Assert.AreEqual(q[k], fk[k], 1e-4f, "float " + k);
        }
    }

    [TestFixture, Category("Server")]
    public class StreamingTests
    {
        MotionClient _client;

        [TestFixtureSetUp]
        public void Connect()
        {
            _client = new MotionClient(Util.Server, false, null, null, 30f);
        }

        [TestFixtureTearDown]
        public void Close()
        {
            if (_client != null) _client.Dispose();
        }

        [Test]
        public void StreamDeliversEveryFrameAndPlaysThemBackAtEngineTime()
        {
            using (var s = _client.Generate("a person walks forward", Util.Fast(2f, 7, Coords.Unity)))
            {
                var pose = new Pose();
                Assert.AreEqual(PlaybackState.Buffering, s.Sample(0.0, pose), "nothing can be buffered yet");
                Assert.IsTrue(s.Wait(300f), "stream did not end");
                Assert.AreEqual("", s.Error);
                StreamInfo info = s.Info;
                Assert.AreEqual(1, info.HasSummary);
                Assert.Greater(info.TotalFrames, 0u);
                Assert.AreEqual(info.TotalFrames, info.FramesReceived);
                Assert.Greater(info.ClientTtffMs, 0f);
                List<float[]> frames = Util.Frames(s);
                Assert.AreEqual((int)info.TotalFrames, frames.Count);

                // An engine loop at 60 Hz: playing, motion time rising, then finished on the last frame.
                double t0 = 100.0;
                var states = new List<PlaybackState>();
                double lastMotion = -1.0;
                for (int tick = 0; tick < 60 * 4; tick++)
                {
                    double t = t0 + tick / 60.0;
                    PlaybackState st = s.Sample(t, pose);
                    states.Add(st);
                    Assert.GreaterOrEqual(pose.Info.MotionTimeS, lastMotion);
                    lastMotion = pose.Info.MotionTimeS;
                    if (st == PlaybackState.Playing && pose.Info.Alpha == 0f)
                        Assert.AreEqual(frames[pose.Info.Frame], pose.Positions, "a frame time gives that frame");
                }
                Assert.AreEqual(PlaybackState.Playing, states[1]);
                Assert.AreEqual(PlaybackState.Finished, states[states.Count - 1]);
                Assert.AreEqual(frames.Count - 1, pose.Info.Frame);
                Assert.AreEqual(frames[frames.Count - 1], pose.Positions);
            }
        }

        [Test]
        public void ReadersPlayTheSameFramesOnTheirOwnClocks()
        {
            using (var s = _client.Generate("a person walks forward", Util.Fast(1.6f, 9, Coords.Unity)))
            {
                Assert.IsTrue(s.Wait(300f));
                List<float[]> frames = Util.Frames(s);
                using (MotionReader a = s.CreateReader("Game", 0f))
                using (MotionReader b = s.CreateReader(null, 0f))
                {
                    Assert.AreEqual("Game", a.SubjectName);
                    Assert.AreEqual("CoAMD", b.SubjectName);
                    var pa = new Pose();
                    var pb = new Pose();
                    a.Sample(10.0, pa);
                    b.Sample(20.0, pb);
                    a.Sample(10.5, pa);   // 0.5 s into the motion
                    b.Sample(20.25, pb);  // 0.25 s
                    Assert.AreEqual(10, pa.Info.Frame);
                    Assert.AreEqual(5, pb.Info.Frame);
                    Assert.AreEqual(frames[10], pa.Positions);
                    Assert.AreEqual(frames[5], pb.Positions);
                    Assert.AreEqual(20.25, pb.Info.EngineTimeS);
                    Assert.AreEqual((int)Coords.Unity, pa.Info.Coords);
                    s.Dispose();  // the readers keep the frames
                    Assert.AreEqual(PlaybackState.Finished, a.Sample(100.0, pa));
                    Assert.AreEqual(frames[frames.Count - 1], pa.Positions);
                }
            }
        }

        [Test]
        public void StreamInfoCarriesTheSettingsTheServerUsed()
        {
            MotionRequest r = Util.Fast(0.8f, 3, Coords.Unity);
            r.Cleanup = Cleanup.Off;
            r.Temperature = 0.8f;
            using (var s = _client.Generate("a person bows", r))
            {
                Assert.IsTrue(s.Wait(300f));
                StreamInfo i = s.Info;
                Assert.AreEqual(0, i.CleanupApplied);
                Assert.AreEqual(0.8f, i.Temperature, 1e-6f);
                Assert.AreEqual(2u, i.Iterations);
                Assert.AreEqual(2u, i.OdeSteps);
            }
        }

        [Test]
        public void UnityStreamIsTheRightHandedStreamWithXNegated()
        {
            List<float[]> rh, un;
            using (var s = _client.Generate("a person waves the right hand", Util.Fast(1.6f, 11, Coords.RightHandedYUp)))
            {
                Assert.IsTrue(s.Wait(300f));
                rh = Util.Frames(s);
            }
            using (var s = _client.Generate("a person waves the right hand", Util.Fast(1.6f, 11, Coords.Unity)))
            {
                Assert.IsTrue(s.Wait(300f));
                un = Util.Frames(s);
            }
            Assert.AreEqual(rh.Count, un.Count);
            Assert.Greater(rh.Count, 0);
            for (int i = 0; i < rh.Count; i++)
                for (int j = 0; j < 21; j++)
                {
                    Assert.AreEqual(-rh[i][3 * j], un[i][3 * j], 1e-4f, "frame " + i + " joint " + j);
                    Assert.AreEqual(rh[i][3 * j + 1], un[i][3 * j + 1], 1e-4f);
                    Assert.AreEqual(rh[i][3 * j + 2], un[i][3 * j + 2], 1e-4f);
                }
        }

        [Test]
        public void CancelStopsTheStreamAndFreezesPlayback()
        {
            using (var s = _client.Generate("a person runs in a circle", Util.Fast(12f, 3, Coords.Unity)))
            {
                s.Cancel();
                var pose = new Pose();
                Assert.AreEqual(PlaybackState.Cancelled, s.Sample(1.0, pose));
                Assert.IsTrue(s.Wait(30f), "a cancelled stream must end promptly");
                Assert.AreEqual(0, s.Info.Receiving);
                Assert.AreEqual(PlaybackState.Cancelled, s.Sample(2.0, pose));
            }
        }

        [Test]
        public void ServerValidationErrorSurfacesAsErrorState()
        {
            using (var s = _client.Generate("", Util.Fast(2f, 1, Coords.Unity)))
            {
                Assert.IsTrue(s.Wait(60f));
                var pose = new Pose();
                Assert.AreEqual(PlaybackState.Error, s.Sample(0.0, pose));
                StringAssert.Contains("INVALID_ARGUMENT", s.Error);
                Assert.IsFalse(pose.HasFrame);
            }
        }

        [Test]
        public void PlayerCoreDrivesEveryBoneAlongTheStreamedBonesWithRootMotion()
        {
            // A hand-built avatar (not derived from the server's skeleton), 1.2 times its size.
            float[] avatar = HandBuiltAvatar.TPose();
            for (int k = 0; k < 63; k++) avatar[k] *= 1.2f;
            using (var core = new MotionPlayerCore(_client, avatar))
            {
                float[] reference = core.Reference.Positions;
                double avatarLeg = Util.Distance(avatar, 13, 14) + Util.Distance(avatar, 14, 15);
                double motionLeg = Util.Distance(reference, 13, 14) + Util.Distance(reference, 14, 15);
                Assert.AreEqual(avatarLeg / motionLeg, core.Retarget.HipsScale, 1e-4);
                core.Play("a person walks forward", Util.Fast(2.4f, 5, Coords.Unity));
                Assert.IsTrue(core.Stream.Wait(300f));
                List<float[]> frames = Util.Frames(core.Stream);
                double charX = 0, charZ = 0, charYaw = 0;
                int ticks = 0;
                for (int tick = 0; tick < 60 * 8; tick++)  // the motion, then 5 s holding its last frame
                {
                    core.Tick(50.0 + tick / 60.0);
                    if (!core.HasPose) continue;
                    if (ticks++ == 0)
                    {
                        charYaw = core.RootMotion.RootYaw;
                        continue;
                    }
                    double c = Math.Cos(charYaw), s = Math.Sin(charYaw);
                    charX += c * core.RootMotion.DeltaX + s * core.RootMotion.DeltaZ;
                    charZ += -s * core.RootMotion.DeltaX + c * core.RootMotion.DeltaZ;
                    charYaw += core.RootMotion.DeltaYaw;
                    float[] p = core.Positions;
                    Assert.Less(Math.Sqrt(p[0] * p[0] + p[2] * p[2]), 0.5, "the hips stay near the root");
                    // Every single-child bone of the avatar, rotated, points along the streamed bone.
                    for (int cj = 1; cj < 21; cj++)
                    {
                        int par = Skeleton.Parents[cj];
                        if (cj == 13 || cj == 17 || cj == 5 || cj == 9) continue;  // twist-only children
                        float ox, oy, oz;
                        Util.Rotate(core.AvatarRotations, par, core.Retarget.RestOffsets[3 * cj],
                                    core.Retarget.RestOffsets[3 * cj + 1], core.Retarget.RestOffsets[3 * cj + 2],
                                    out ox, out oy, out oz);
                        double a = Util.Angle(ox, oy, oz, p[3 * cj] - p[3 * par], p[3 * cj + 1] - p[3 * par + 1],
                                              p[3 * cj + 2] - p[3 * par + 2]);
                        Assert.Less(a, 0.01, "bone " + Skeleton.JointNames[cj] + " tick " + tick);
                    }
                }
                Assert.Greater(ticks, 40);
                Assert.AreEqual(PlaybackState.Finished, core.State);
                // The character moved by the deltas ends under the last frame's hips.
                float[] first = frames[0], last = frames[frames.Count - 1];
                Assert.AreEqual(last[0] - first[0], charX, 0.01, "root motion adds up to the hips' travel (x)");
                Assert.AreEqual(last[2] - first[2], charZ, 0.01, "root motion adds up to the hips' travel (z)");

                // Tick() allocates nothing: 2000 ticks (a replay) leave the managed heap as it was.
                core.Replay();
                for (int tick = 0; tick < 10; tick++) core.Tick(60.0 + tick / 60.0);
                long before = GC.GetTotalMemory(false);
                for (int tick = 10; tick < 2010; tick++) core.Tick(60.0 + tick / 600.0);
                long grown = GC.GetTotalMemory(false) - before;
                Assert.Less(grown, 8 * 1024, "Tick() must not allocate per call");

                // In place: no travel reported.
                core.Replay();
                core.RootMotion.Enabled = false;
                for (int tick = 0; tick < 30; tick++)
                {
                    core.Tick(80.0 + tick / 60.0);
                    Assert.AreEqual(0f, core.RootMotion.DeltaX);
                    Assert.AreEqual(0f, core.RootMotion.DeltaZ);
                }
            }
        }

        // Largest turn of any joint between two ticks around the moment a second prompt takes over.
        double SwitchJump(float blendSeconds, out bool kept)
        {
            using (var core = new MotionPlayerCore(_client, null))
            {
                core.Blender.BlendSeconds = blendSeconds;
                core.Play("a person walks forward", Util.Fast(4f, 21, Coords.Unity));
                Assert.IsTrue(core.Stream.Wait(300f));
                MotionStream first = core.Stream;
                double t = 10.0;
                for (int i = 0; i < 60; i++, t += 1 / 60.0) core.Tick(t);
                core.Play("a person raises both arms", Util.Fast(2f, 22, Coords.Unity));
                // Right after the request nothing of it has arrived: the first motion plays on.
                core.Tick(t);
                t += 1 / 60.0;
                kept = core.PendingStream != null && ReferenceEquals(core.Stream, first) &&
                       core.State == PlaybackState.Playing && core.HasPose;
                Assert.IsTrue(core.PendingStream.Wait(300f));
                var prev = (float[])core.LocalRotations.Clone();
                double jump = 0;
                for (int i = 0; i < 40; i++, t += 1 / 60.0)
                {
                    core.Tick(t);
                    for (int j = 1; j < 21; j++) jump = Math.Max(jump, QuatMath.Angle(core.LocalRotations, 4 * j, prev, 4 * j));
                    Array.Copy(core.LocalRotations, prev, 84);
                }
                Assert.IsNull(core.PendingStream, "the new motion took over");
                Assert.IsFalse(ReferenceEquals(core.Stream, first));
                return jump;
            }
        }

        [Test]
        public void ANewPromptTakesOverWithoutFreezingOrPopping()
        {
            bool kept;
            double cut = SwitchJump(0f, out kept);
            double blended = SwitchJump(0.3f, out kept);
            Assert.IsTrue(kept, "the first motion stayed on screen while the second one buffered");
            Console.WriteLine("largest joint turn per tick at the switch: cut {0:F3} rad, blended {1:F3} rad", cut, blended);
            Assert.Greater(cut, 0.2, "the two motions differ enough to pop on a cut");
            Assert.Less(blended, 0.25 * cut);
            // At most the offset spread over the blend along its steepest part (1.875 x offset per
            // blend time, 18 ticks of 0.3 s), plus the new motion's own movement in a tick.
            Assert.Less(blended, 1.875 * cut / 18 + 0.1);
        }

        [Test]
        public void AsyncConnectionAndBakingAFinishedMotion()
        {
            using (var conn = new AsyncConnection(Util.Server, false, null, null, 30f))
            {
                Assert.IsTrue(conn.Task.Wait(60000));
                Assert.AreEqual(ConnectionStatus.Connected, conn.Status, conn.Error);
                using (var s = conn.Client.Generate("a person bows", Util.Fast(1.2f, 4, Coords.Unity)))
                {
                    Assert.Throws<InvalidOperationException>(() => BakedMotion.FromStream(s), "still receiving");
                    Assert.IsTrue(s.Wait(300f));
                    BakedMotion m = BakedMotion.FromStream(s, "a person bows");
                    List<float[]> frames = Util.Frames(s);
                    Assert.AreEqual(frames.Count, m.FrameCount);
                    Assert.AreEqual("a person bows", m.Text);
                    for (int i = 0; i < m.FrameCount; i++)
                        for (int k = 0; k < 63; k++) Assert.AreEqual(frames[i][k], m.Positions[63 * i + k]);
                    var rot = new float[84];
                    for (int i = 0; i < m.FrameCount; i++)
                    {
                        s.Frame(i, null, rot);
                        for (int j = 0; j < 21; j++)
                            Assert.Less(QuatMath.Angle(rot, 4 * j, m.LocalRotations, 84 * i + 4 * j), 1e-4);
                    }
                }
            }
        }
    }
}
