using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>The engine-independent part of MotionStreamPlayer: requests motions, samples the
    /// current one every engine frame, splits root motion off, blends between prompts and solves
    /// the avatar's bone rotations. Allocates nothing per Tick().
    ///
    /// A new prompt does not interrupt the motion on screen: the new stream buffers while the
    /// current one keeps playing, and takes over once it plays, through PoseBlender's
    /// inertialization. Everything is in Unity's frame (request.Coordinates = Unity).</summary>
    public sealed class MotionPlayerCore : IDisposable
    {
        const int Pos = CoamdNative.PositionFloats, Rot = CoamdNative.RotationFloats;
        readonly MotionClient _client;
        readonly Pose _current = new Pose();
        readonly Pose _incoming = new Pose();
        readonly float[] _hips = new float[3];
        MotionStream _stream, _pending;
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
        /// <summary>The motion on screen and the one buffering to replace it (null when none).</summary>
        public MotionStream Stream => _stream;
        public MotionStream PendingStream => _pending;
        /// <summary>The last Tick()'s playback state of the motion on screen.</summary>
        public PlaybackState State { get; private set; } = PlaybackState.Finished;
        /// <summary>Why the last requested motion failed ("" when it did not).</summary>
        public string LastError { get; private set; } = "";
        /// <summary>Whether Tick() solves AvatarRotations (the direct retargeting mode).</summary>
        public bool SolveAvatarRotations = true;

        /// <param name="client">an open connection (not owned).</param>
        /// <param name="avatarRestPositions63">the avatar's rest joint positions in Unity's frame (see
        /// HumanoidRetarget); null drives the motion skeleton's own reference pose.</param>
        public MotionPlayerCore(MotionClient client, float[] avatarRestPositions63)
        {
            _client = client ?? throw new ArgumentNullException(nameof(client));
            Reference = client.ReferencePose(Coords.Unity);
            Retarget = new HumanoidRetarget(avatarRestPositions63 ?? Reference.Positions, Reference.Positions);
        }

        /// <summary>Requests a motion for text; it replaces the current one (blending) as soon as it
        /// plays. A request still buffering is cancelled.</summary>
        public void Play(string text, MotionRequest request)
        {
            if (request == null) throw new ArgumentNullException(nameof(request));
            if (request.Coordinates != Coords.Unity)
                throw new ArgumentException("MotionPlayerCore plays Unity coordinates (request.Coordinates = Unity)");
            MotionStream next = _client.Generate(text, request);
            if (_pending != null) _pending.Dispose();
            _pending = next;
            LastError = "";
            if (_stream == null)
            {
                _stream = _pending;
                _pending = null;
                RootMotion.Reset();
            }
        }

        /// <summary>Replays the motion on screen from its start (blending into it).</summary>
        public void Replay()
        {
            if (_stream == null) return;
            _stream.RestartPlayback();
            if (HasPose) Blender.Capture(LocalRotations, _hips);
            RootMotion.Reset();
        }

        /// <summary>Stops both the motion on screen and one buffering; the last pose stays.</summary>
        public void Stop()
        {
            if (_pending != null) _pending.Dispose();
            if (_stream != null) _stream.Dispose();
            _pending = _stream = null;
        }

        /// <summary>Samples at engine time t (seconds). When HasPose: LocalRotations, Positions (and
        /// AvatarRotations) hold the pose relative to the root, RootMotion this tick's travel and turn.</summary>
        public PlaybackState Tick(double engineTimeSeconds)
        {
            double dt = _ticked ? Math.Max(0.0, engineTimeSeconds - _lastTick) : 0.0;
            _ticked = true;
            _lastTick = engineTimeSeconds;
            if (_pending != null) TickPending(engineTimeSeconds);
            if (_stream == null) return State;
            State = _stream.Sample(engineTimeSeconds, _current);
            if (State == PlaybackState.Error && LastError.Length == 0) LastError = _stream.Error;
            if (!_current.HasFrame) return State;
            Output(engineTimeSeconds, _current, dt);
            return State;
        }

        // The stream waiting to take over: sampled on its own clock; once it plays, it is shown.
        void TickPending(double t)
        {
            PlaybackState st = _pending.Sample(t, _incoming);
            if (st == PlaybackState.Error || st == PlaybackState.Cancelled)
            {
                LastError = st == PlaybackState.Error ? _pending.Error : "cancelled";
                _pending.Dispose();
                _pending = null;
                return;
            }
            if (!_incoming.HasFrame || st == PlaybackState.Buffering) return;
            if (HasPose) Blender.Capture(LocalRotations, _hips);
            if (_stream != null) _stream.Dispose();
            _stream = _pending;  // its playhead has just started, at motion time 0
            _pending = null;
            RootMotion.Reset();
        }

        void Output(double t, Pose pose, double dt)
        {
            Array.Copy(pose.Positions, Positions, Pos);
            Array.Copy(pose.LocalRotations, LocalRotations, Rot);
            if (_stream != null && _stream.RootMotion == RootMotionMode.InPlace)
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

        public void Dispose()
        {
            Stop();
        }
    }
}
