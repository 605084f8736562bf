using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>What a stream and a session offer MotionCoreBase: a playhead sampled at engine time,
    /// the failure text and the root motion mode of the frames.</summary>
    internal interface IMotionSource
    {
        PlaybackState Sample(double engineTimeSeconds, Pose pose);
        string Error { get; }
        RootMotionMode RootMotion { get; }
    }

    /// <summary>What MotionPlayerCore (one-shot prompts) and MotionSessionCore (an endless session)
    /// share: Tick() samples the motion on screen every engine frame, splits root motion off (from
    /// the hips, or from the server's root velocity and heading for RootMotionMode.InPlace frames),
    /// blends from the pose shown before a new motion took over (PoseBlender's inertialization) and
    /// solves the avatar's bone rotations. Everything is in Unity's frame; Tick() itself allocates
    /// nothing.</summary>
    public abstract class MotionCoreBase : IDisposable
    {
        const int Pos = CoamdNative.PositionFloats, Rot = CoamdNative.RotationFloats;
        readonly Pose _pose = new Pose();
        readonly float[] _hips = new float[3];
        double _lastTick;
        bool _ticked;

        /// <summary>The motion skeleton's upright reference pose in Unity's frame.</summary>
        public ReferencePose Reference { get; }
        public HumanoidRetarget Retarget { get; }
        public readonly RootMotion RootMotion = new RootMotion();
        public readonly PoseBlender Blender = new PoseBlender();

        /// <summary>The pose to show, relative to the root (RootMotion): local rotations (84 floats,
        /// relative to Reference.RestOffsets; the hips' relative to the root's heading) ...</summary>
        public readonly float[] LocalRotations = new float[Rot];
        /// <summary>... and joint positions (63 floats, forward kinematics of LocalRotations on the rest
        /// offsets from the hips, motion metres).</summary>
        public readonly float[] Positions = new float[Pos];
        /// <summary>Per-joint world rotations of the avatar's bones relative to its rest pose
        /// (84 floats, HumanoidRetarget) for the direct retargeting mode.</summary>
        public readonly float[] AvatarRotations = new float[Rot];
        /// <summary>Whether the outputs hold a pose (false until the first frame arrived).</summary>
        public bool HasPose { get; private set; }
        /// <summary>The last Tick()'s playback state of the motion on screen.</summary>
        public PlaybackState State { get; private protected set; } = PlaybackState.Finished;
        /// <summary>Why the last requested motion failed ("" when it did not).</summary>
        public string LastError { get; private protected set; } = "";
        /// <summary>Whether Tick() solves AvatarRotations (the direct retargeting mode).</summary>
        public bool SolveAvatarRotations = true;

        /// <summary>The connection the motions are requested on (not owned).</summary>
        private protected MotionClient Client { get; }

        /// <param name="client">an open connection (not owned).</param>
        /// <param name="avatarRestPositions63">the avatar's rest joint positions in Unity's frame (see
        /// HumanoidRetarget); null drives the motion skeleton's own reference pose.</param>
        private protected MotionCoreBase(MotionClient client, float[] avatarRestPositions63)
        {
            Client = client ?? throw new ArgumentNullException(nameof(client));
            Reference = client.ReferencePose(Coords.Unity);
            Retarget = new HumanoidRetarget(avatarRestPositions63 ?? Reference.Positions, Reference.Positions);
        }

        /// <summary>Samples at engine time t (seconds). When HasPose: LocalRotations, Positions (and
        /// AvatarRotations) hold the pose relative to the root, RootMotion this tick's travel and turn.</summary>
        public PlaybackState Tick(double engineTimeSeconds)
        {
            double dt = _ticked ? Math.Max(0.0, engineTimeSeconds - _lastTick) : 0.0;
            _ticked = true;
            _lastTick = engineTimeSeconds;
            IMotionSource source = Advance(engineTimeSeconds);
            if (source == null) return State;
            State = source.Sample(engineTimeSeconds, _pose);
            if (State == PlaybackState.Error && LastError.Length == 0) LastError = source.Error;
            if (!_pose.HasFrame) return State;
            Reached(_pose);
            Output(engineTimeSeconds, _pose, dt, source.RootMotion);
            return State;
        }

        /// <summary>Tick's first step (before sampling): brings the motions up to engine time t and
        /// returns the one on screen (null: none, the outputs stay as they are).</summary>
        internal abstract IMotionSource Advance(double engineTimeSeconds);

        /// <summary>Tick's step after sampling a frame of the motion on screen, before the outputs.</summary>
        internal virtual void Reached(Pose pose)
        {
        }

        /// <summary>A new motion takes over from the next frame on: it blends from the pose on
        /// screen (if any) and its root motion starts afresh.</summary>
        private protected void TakeOver()
        {
            if (HasPose) Blender.Capture(LocalRotations, _hips);
            RootMotion.Reset();
        }

        void Output(double t, Pose pose, double dt, RootMotionMode rootMotion)
        {
            Array.Copy(pose.Positions, Positions, Pos);
            Array.Copy(pose.LocalRotations, LocalRotations, Rot);
            if (rootMotion == RootMotionMode.InPlace)
                RootMotion.ProcessInPlace(t, pose.Info.MotionTimeS, pose.Info.RootVelocityX, pose.Info.RootVelocityZ,
                                          pose.Info.Heading, Positions, LocalRotations, null);
            else
                RootMotion.Process(t, Positions, LocalRotations, null);
            _hips[0] = Positions[0];
            _hips[1] = Positions[1];
            _hips[2] = Positions[2];
            if (Blender.Active)
            {
                Blender.Apply(LocalRotations, _hips, dt);
                CoamdException.Check(CoamdNative.coamd_forward_kinematics(_hips, LocalRotations, Reference.RestOffsets,
                                                                          Positions));
            }
            if (SolveAvatarRotations) Retarget.Solve(Positions, AvatarRotations);
            HasPose = true;
        }

        /// <summary>Stops and releases the motion(s); the last pose stays.</summary>
        public abstract void Stop();

        public void Dispose()
        {
            Stop();
        }
    }
}
