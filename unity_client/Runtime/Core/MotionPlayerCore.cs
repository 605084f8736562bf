using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>The engine-independent part of MotionStreamPlayer: requests motions and plays the
    /// current one (sampling, root motion, blending and the avatar's bone rotations are
    /// MotionCoreBase's). Allocates nothing per Tick().
    ///
    /// A new prompt does not interrupt the motion on screen: the new stream buffers while the
    /// current one keeps playing, and takes over once it plays, through PoseBlender's
    /// inertialization. Everything is in Unity's frame (request.Coordinates = Unity).</summary>
    public sealed class MotionPlayerCore : MotionCoreBase
    {
        readonly Pose _incoming = new Pose();
        MotionStream _stream, _pending;

        /// <summary>The motion on screen and the one buffering to replace it (null when none).</summary>
        public MotionStream Stream => _stream;
        public MotionStream PendingStream => _pending;

        /// <param name="client">an open connection (not owned).</param>
        /// <param name="avatarRestPositions63">the avatar's rest joint positions in Unity's frame (see
        /// HumanoidRetarget); null drives the motion skeleton's own reference pose.</param>
        public MotionPlayerCore(MotionClient client, float[] avatarRestPositions63)
            : base(client, avatarRestPositions63)
        {
        }

        /// <summary>Requests a motion for text; it replaces the current one (blending) as soon as it
        /// plays. A request still buffering is cancelled.</summary>
        public void Play(string text, MotionRequest request)
        {
            if (request == null) throw new ArgumentNullException(nameof(request));
            if (request.Coordinates != Coords.Unity)
                throw new ArgumentException("MotionPlayerCore plays Unity coordinates (request.Coordinates = Unity)");
            MotionStream next = Client.Generate(text, request);
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
            TakeOver();
        }

        /// <summary>Stops both the motion on screen and one buffering; the last pose stays.</summary>
        public override void Stop()
        {
            if (_pending != null) _pending.Dispose();
            if (_stream != null) _stream.Dispose();
            _pending = _stream = null;
        }

        internal override IMotionSource Advance(double engineTimeSeconds)
        {
            if (_pending != null) TickPending(engineTimeSeconds);
            return _stream;
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
            TakeOver();
            if (_stream != null) _stream.Dispose();
            _stream = _pending;  // its playhead has just started, at motion time 0
            _pending = null;
        }
    }
}
