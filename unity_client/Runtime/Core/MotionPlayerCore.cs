using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>The engine-independent part of MotionStreamPlayer: requests a motion, samples it
    /// every engine frame, splits root motion off and solves the avatar's bone rotations. Allocates
    /// nothing per Tick().</summary>
    public sealed class MotionPlayerCore : IDisposable
    {
        readonly MotionClient _client;
        MotionStream _stream;

        public readonly Pose Pose = new Pose();
        public readonly RootMotion RootMotion = new RootMotion();
        public HumanoidRetarget Retarget { get; }
        /// <summary>Per-joint world rotations relative to the avatar's rest pose (84 floats).</summary>
        public readonly float[] AvatarRotations = new float[CoamdNative.RotationFloats];
        public MotionStream Stream => _stream;

        /// <summary>The motion skeleton's upright reference pose in Unity's frame.</summary>
        public ReferencePose Reference { get; }

        /// <param name="client">an open connection (not owned).</param>
        /// <param name="avatarRestPositions63">the avatar's rest joint positions in Unity's frame (see
        /// HumanoidRetarget); null drives the motion skeleton's own reference pose.</param>
        public MotionPlayerCore(MotionClient client, float[] avatarRestPositions63)
        {
            _client = client ?? throw new ArgumentNullException(nameof(client));
            Reference = client.ReferencePose(Coords.Unity);
            Retarget = new HumanoidRetarget(avatarRestPositions63 ?? Reference.Positions, Reference.Positions);
        }

        /// <summary>Requests a motion for text (Unity coordinates) and starts buffering it; the previous
        /// stream is cancelled.</summary>
        public void Play(string text, MotionRequest request)
        {
            if (request.Coordinates != Coords.Unity)
                throw new ArgumentException("MotionPlayerCore plays Unity coordinates (request.Coordinates = Unity)");
            Stop();
            _stream = _client.Generate(text, request);
            RootMotion.Reset();
        }

        /// <summary>Replays the current motion from its start.</summary>
        public void Replay()
        {
            if (_stream == null) return;
            _stream.RestartPlayback();
            RootMotion.Reset();
        }

        public void Stop()
        {
            if (_stream != null) _stream.Dispose();
            _stream = null;
        }

        /// <summary>Samples at engine time t (seconds). When Pose.HasFrame, Pose.Positions are hips-
        /// centred (RootMotion), RootMotion.DeltaX/Z hold this tick's travel and AvatarRotations the
        /// bones' rotations.</summary>
        public PlaybackState Tick(double engineTimeSeconds)
        {
            if (_stream == null) return PlaybackState.Finished;
            PlaybackState state = _stream.Sample(engineTimeSeconds, Pose);
            if (Pose.HasFrame)
            {
                RootMotion.Process(Pose.Positions);
                Retarget.Solve(Pose.Positions, AvatarRotations);
            }
            return state;
        }

        public void Dispose()
        {
            Stop();
        }
    }
}
