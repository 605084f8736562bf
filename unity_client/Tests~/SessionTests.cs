// NUnit 2.6 tests of ABI version 4 from C#: in-place root motion (offline), and against a real
// server (category "Server"): capabilities, the interpretation of a text, root velocity and heading
// per frame, and MotionSessionCore steering one endless motion.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using CoAMD;
using CoAMD.Native;
using NUnit.Framework;

namespace CoAMD.Tests
{
    [TestFixture]
    public class InPlaceRootMotionTests
    {
        [Test]
        public void VelocityAndHeadingDriveTheRootAndThePoseSitsOnIt()
        {
            var rm = new RootMotion { HeadingSmoothingSeconds = 0f };
            var p = new float[63];
            var local = new float[84];
            double x = 0, z = 0, yaw = 0.2;  // the first heading
            const float vx = 0.3f, vz = 1.2f;
            for (int tick = 0; tick < 120; tick++)
            {
                double t = tick / 60.0, m = t;  // motion time advances with engine time
                float heading = 0.2f + 0.5f * (float)t;
                for (int j = 0; j < 21; j++)
                {
                    p[3 * j] = 0.1f * j;
                    p[3 * j + 1] = 1f;
                    p[3 * j + 2] = 0f;
                }
                for (int j = 0; j < 21; j++) local[4 * j + 3] = 1f;
                QuatMath.Yaw(heading, local, 0);  // the pose keeps its facing in place
                rm.ProcessInPlace(t, m, vx, vz, heading, p, local, null);
                // Rebuild the root's path from the deltas (given in the previous root frame).
                double c = Math.Cos(yaw), s = Math.Sin(yaw);
                x += c * rm.DeltaX + s * rm.DeltaZ;
                z += -s * rm.DeltaX + c * rm.DeltaZ;
                yaw += rm.DeltaYaw;
                Assert.AreEqual(heading, rm.RootYaw, 1e-5);
                Assert.AreEqual(rm.RootYaw, yaw, 1e-4);
                Assert.AreEqual(rm.RootX, x, 1e-4);
                Assert.AreEqual(rm.RootZ, z, 1e-4);
                Assert.AreEqual(vx * m, rm.RootX, 1e-4);
                Assert.AreEqual(vz * m, rm.RootZ, 1e-4);
                // Relative to the root, the hips face forward.
                var ident = new float[] { 0, 0, 0, 1 };
                Assert.Less(QuatMath.Angle(local, 0, ident, 0), 1e-4);
            }
        }

        [Test]
        public void NoTravelWhileTheMotionTimeStands()
        {
            var rm = new RootMotion();
            var p = new float[63];
            rm.ProcessInPlace(0.0, 0.0, 1f, 1f, 0f, p, null, null);
            for (int tick = 1; tick < 30; tick++)
            {
                rm.ProcessInPlace(tick / 60.0, 0.5, 1f, 1f, 0f, p, null, null);  // buffering: motion time held
                if (tick > 1)
                {
                    Assert.AreEqual(0f, rm.DeltaX);
                    Assert.AreEqual(0f, rm.DeltaZ);
                }
            }
            rm.Enabled = false;
            rm.ProcessInPlace(1.0, 1.0, 1f, 1f, 1f, p, null, null);
            Assert.AreEqual(0f, rm.DeltaZ);
            Assert.AreEqual(0f, rm.DeltaYaw);
        }
    }

    [TestFixture, Category("Server")]
    public class AbiVersion4ServerTests
    {
        MotionClient _client;

        [TestFixtureSetUp]
        public void Connect()
        {
            _client = new MotionClient(Util.Server, false, null, null, 30f);
        }

        [TestFixtureTearDown]
        public void Disconnect()
        {
            if (_client != null) _client.Dispose();
        }

        [Test]
        public void CapabilitiesListActionsStylesAndTheDurationRange()
        {
            Capabilities c = _client.GetCapabilities();
            Assert.Greater(c.Actions.Count, 5);
            Assert.Greater(c.Styles.Count, 1);
            Assert.Less(c.MinDurationSeconds, c.MaxDurationSeconds);
            Assert.AreEqual(20f, c.Fps);
            Assert.Greater(c.MaxTextChars, 0);
            var labels = new HashSet<string>();
            foreach (CapabilityInfo a in c.Actions)
            {
                Assert.IsNotEmpty(a.Label);
                Assert.IsNotEmpty(a.Description);
                Assert.GreaterOrEqual(a.TrainingClips, 0);
                labels.Add(a.Label);
            }
            Assert.IsTrue(labels.Contains("wave-right-hand"), string.Join(", ", labels));
        }

        [Test]
        public void CapabilitiesSayWhichStylesEachActionWasRecordedIn()
        {
            Capabilities c = _client.GetCapabilities();
            CapabilityInfo wave = null, walk = null;
            foreach (CapabilityInfo a in c.Actions)
            {
                if (a.Label == "wave-right-hand") wave = a;
                if (a.Label == "walk") walk = a;
                int sum = 0;
                foreach (var kv in a.RecordedWith)
                {
                    Assert.AreEqual(kv.Value, c.PairClips(a.Label, kv.Key), a.Label + " " + kv.Key);
                    sum += kv.Value;
                }
                Assert.AreEqual(a.TrainingClips, sum, a.Label);   // every training clip has one style
            }
            Assert.IsNotNull(wave);
            Assert.Greater(wave.RecordedWith["elderly"], 0);
            Assert.IsFalse(wave.RecordedWith.ContainsKey("angry"));
            Assert.IsFalse(c.GeneratesStyle("wave-right-hand", "angry"));   // left out, with a note
            Assert.IsTrue(c.GeneratesStyle("wave-right-hand", "elderly"));
            Assert.IsTrue(c.GeneratesStyle("walk", "angry"));
            Assert.AreEqual(walk.RecordedWith["angry"], c.PairClips("walk", "angry"));
            foreach (CapabilityInfo st in c.Styles)
                foreach (var kv in st.RecordedWith)
                    Assert.AreEqual(kv.Value, c.PairClips(kv.Key, st.Label), st.Label + " " + kv.Key);
        }

        [Test]
        public void InterpretationAndInPlaceRootMotionOfAStream()
        {
            MotionRequest r = Util.Fast(2f, 8, Coords.Unity);
            r.RootMotion = RootMotionMode.InPlace;
            using (MotionStream s = _client.Generate("a person walks forward", r))
            {
                Assert.IsTrue(s.Wait(300f));
                Assert.AreEqual("", s.Error);
                Interpretation it = s.Interpretation;
                Assert.IsNotNull(it);
                StringAssert.StartsWith("walk", it.TopContent);
                Assert.IsFalse(it.OutOfVocabulary);
                Assert.IsNotEmpty(it.ConditionedText);
                StreamInfo info = s.Info;
                Assert.AreEqual((int)RootMotionMode.InPlace, info.RootMotion);
                Assert.AreEqual(1, info.SkeletonApplied);
                // The hips stay put; the travel is in the root velocity (forward: +Z in Unity).
                var pose = new Pose();
                double speed = 0;
                int n = (int)info.TotalFrames;
                for (int k = 1; k < n; k++)
                {
                    Assert.IsTrue(s.SampleMotionTime(k / 20.0, pose));
                    Assert.AreEqual(0f, pose.Positions[0], 1e-3f);
                    Assert.AreEqual(0f, pose.Positions[2], 1e-3f);
                    Assert.AreEqual(0f, pose.Info.RootVelocityY);
                    speed += Math.Sqrt(pose.Info.RootVelocityX * pose.Info.RootVelocityX +
                                       pose.Info.RootVelocityZ * pose.Info.RootVelocityZ);
                }
                Assert.Greater(speed / (n - 1), 0.2, "mean speed of a walk (m/s)");
            }
            using (MotionStream s = _client.Generate("a person juggles three balls", Util.Fast(0.8f, 5, Coords.Unity)))
            {
                Assert.IsTrue(s.Wait(300f));
                Assert.IsTrue(s.Interpretation.OutOfVocabulary);
                Assert.AreEqual(1, s.Info.OutOfVocabulary);
                Assert.IsNotEmpty(s.Interpretation.Note);
            }
        }

        [Test]
        public void SessionCoreKeepsPlayingAndFollowsANewInstruction()
        {
            var options = new SessionOptions
            {
                Seed = 3, Guidance = Guidance.Off, Iterations = 2, OdeSteps = 2, ServerRotations = true,
                RootMotion = RootMotionMode.InPlace,
            };
            using (var core = new MotionSessionCore(_client, null, options))
            {
                var events = new List<SessionEvent>();
                var started = new List<int>();
                core.EventReceived += e => events.Add(e);
                core.InstructionStarted += e => started.Add(e.Instruction);
                Assert.AreEqual(0, core.SetInstruction("a person walks forward"));
                var clock = Stopwatch.StartNew();
                int instructed = -1;
                double travel = 0;
                while (clock.Elapsed.TotalSeconds < 5.0)
                {
                    PlaybackState st = core.Tick(clock.Elapsed.TotalSeconds);
                    Assert.AreNotEqual(PlaybackState.Error, st, core.LastError);
                    if (core.Session != null && core.HasPose)
                    {
                        travel += Math.Sqrt(core.RootMotion.DeltaX * core.RootMotion.DeltaX +
                                            core.RootMotion.DeltaZ * core.RootMotion.DeltaZ);
                    }
                    if (instructed < 0 && clock.Elapsed.TotalSeconds > 1.5)
                    {
                        Assert.IsTrue(core.Running);
                        instructed = core.SetInstruction("a person waves the right hand");
                        Assert.AreEqual(1, instructed);
                    }
                    Thread.Sleep(15);
                }
                Assert.AreEqual(SessionEventKind.Opened, events[0].Kind);
                CollectionAssert.AreEqual(new[] { 0, 1 }, started);
                Assert.AreEqual(1, core.CurrentInstruction);
                Assert.AreEqual("a person waves the right hand", core.CurrentText);
                Assert.AreEqual("wave-right-hand", core.LastInterpretation.TopContent);
                Assert.Greater(travel, 0.2, "the walk moved the root (metres)");
                core.Close();
                Assert.IsTrue(core.Session.Wait(60f));
                for (int i = 0; i < 50 && core.Tick(clock.Elapsed.TotalSeconds + 600.0 + i) != PlaybackState.Finished; i++)
                    Thread.Sleep(10);
                Assert.AreEqual(PlaybackState.Finished, core.State);
                Assert.AreEqual(SessionEventKind.Closed, events[events.Count - 1].Kind);
                Assert.Throws<CoamdException>(() => core.Session.Instruct("a person sits down"));
                // A new instruction after the end opens a new session.
                Assert.AreEqual(0, core.SetInstruction("a person bows"));
                core.Stop();
            }
        }
    }
}
