using System;
using System.Collections.Generic;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>The engine-independent part of MotionSessionPlayer: one endless motion (a session)
    /// that keeps playing while its instruction changes. SetInstruction() opens the session with its
    /// first text, later ones steer it; Tick() samples the session's playhead every engine frame,
    /// splits root motion off (from the server's root velocity and heading when the session runs
    /// RootMotionMode.InPlace), solves the avatar's bone rotations (as MotionCoreBase does) and
    /// reports the session's events: EventReceived as they arrive, InstructionStarted when playback
    /// reaches the first frame that follows an instruction. A session that ended (closed, failed,
    /// cancelled) is replaced by a new one on the next SetInstruction(), blending from the pose on
    /// screen. Everything is in Unity's frame (options.Coordinates = Unity). Tick() allocates only
    /// when events arrive.</summary>
    public sealed class MotionSessionCore : MotionCoreBase
    {
        readonly List<SessionEvent> _waiting = new List<SessionEvent>();  // Instruction events not yet reached
        MotionSession _session;

        /// <summary>Settings of the next session opened (Coordinates must stay Unity).</summary>
        public readonly SessionOptions Options;

        /// <summary>The session playing (null before the first SetInstruction or after Stop).</summary>
        public MotionSession Session => _session;
        /// <summary>The number of the instruction playing (0 = the session's opening text, then the
        /// numbers SetInstruction returned), -1 before the first frame.</summary>
        public int CurrentInstruction { get; private set; } = -1;
        /// <summary>The text of CurrentInstruction ("" before the first frame).</summary>
        public string CurrentText { get; private set; } = "";
        /// <summary>The last Instruction event's interpretation (null before one arrived).</summary>
        public Interpretation LastInterpretation { get; private set; }
        /// <summary>Every event of the session, on the thread calling Tick(), as it arrives.</summary>
        public event Action<SessionEvent> EventReceived;
        /// <summary>Playback reached the first frame of an instruction (on the thread calling Tick()).</summary>
        public event Action<SessionEvent> InstructionStarted;

        readonly Dictionary<int, string> _texts = new Dictionary<int, string>();

        /// <param name="client">an open connection (not owned).</param>
        /// <param name="avatarRestPositions63">the avatar's rest joint positions in Unity's frame; null
        /// drives the motion skeleton's own reference pose.</param>
        /// <param name="options">session settings (null: defaults in Unity's frame).</param>
        public MotionSessionCore(MotionClient client, float[] avatarRestPositions63, SessionOptions options)
            : base(client, avatarRestPositions63)
        {
            Options = options ?? new SessionOptions();
        }

        /// <summary>Whether a session is open and still receiving or playing (a new instruction steers it).</summary>
        public bool Running => _session != null && (State == PlaybackState.Buffering || State == PlaybackState.Playing);

        /// <summary>Steers the motion to text: the running session's next instruction, or the opening
        /// text of a new session when none runs. Returns the instruction's number (0 for an opening text).</summary>
        public int SetInstruction(string text)
        {
            if (string.IsNullOrEmpty(text)) throw new ArgumentException("text is empty", nameof(text));
            if (Options.Coordinates != Coords.Unity)
                throw new ArgumentException("MotionSessionCore plays Unity coordinates (Options.Coordinates = Unity)");
            if (_session != null && _session.Error.Length == 0 && State != PlaybackState.Finished &&
                State != PlaybackState.Cancelled && State != PlaybackState.Error)
            {
                try
                {
                    int n = _session.Instruct(text);
                    _texts[n] = text;
                    return n;
                }
                catch (CoamdException e) when (e.Status == Status.State)
                {
                    // the session has just ended: open a new one below
                }
            }
            Open(text);
            return 0;
        }

        void Open(string text)
        {
            MotionSession next = Client.OpenSession(text, Options);
            if (_session != null) _session.Dispose();
            _session = next;
            _waiting.Clear();
            _texts.Clear();
            _texts[0] = text;
            CurrentInstruction = -1;
            CurrentText = "";
            LastError = "";
            State = PlaybackState.Buffering;
            TakeOver();
        }

        /// <summary>Asks the server to end the session; it plays to its last frame, then Finished.</summary>
        public void Close()
        {
            if (_session != null) _session.Close();
        }

        /// <summary>Cancels and releases the session; the last pose stays.</summary>
        public override void Stop()
        {
            if (_session != null) _session.Dispose();
            _session = null;
            _waiting.Clear();
            State = PlaybackState.Finished;
        }

        // Before sampling: the events that arrived.
        internal override IMotionSource Advance(double engineTimeSeconds)
        {
            if (_session == null) return null;
            SessionEvent ev;
            while (_session.TryGetEvent(out ev))
            {
                if (ev.Kind == SessionEventKind.Instruction)
                {
                    _waiting.Add(ev);
                    if (ev.Interpretation != null) LastInterpretation = ev.Interpretation;
                }
                EventReceived?.Invoke(ev);
            }
            return _session;
        }

        // A frame on screen: the instructions it has reached.
        internal override void Reached(Pose pose)
        {
            while (_waiting.Count > 0 && pose.Info.Frame >= _waiting[0].FirstFrame)
            {
                SessionEvent started = _waiting[0];
                _waiting.RemoveAt(0);
                CurrentInstruction = started.Instruction;
                string text;
                CurrentText = _texts.TryGetValue(started.Instruction, out text) ? text : "";
                InstructionStarted?.Invoke(started);
            }
        }
    }
}
