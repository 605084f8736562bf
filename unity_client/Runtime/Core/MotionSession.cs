// Managed wrappers of ABI version 4: capabilities, the server's interpretation of a text, and
// sessions (an endless motion steered by new instructions).
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>A label with its score (a probability 0..1 for an interpretation).</summary>
    public struct LabelScore
    {
        public readonly string Label;
        public readonly float Score;

        public LabelScore(string label, float score)
        {
            Label = label;
            Score = score;
        }

        public override string ToString() => Label + " " + Score.ToString("0.00");
    }

    /// <summary>How the server understood a request's text: the top content (action) and style labels
    /// with probabilities (best first; style "none" = no style named), the side, whether the text asks
    /// for a motion the model was not trained on (the server still returns the nearest supported
    /// one), a note for people and the sentence the generator was conditioned on.</summary>
    public sealed class Interpretation
    {
        public readonly IReadOnlyList<LabelScore> Content;
        public readonly IReadOnlyList<LabelScore> Style;
        /// <summary>"left", "right", "both" or "".</summary>
        public readonly string Side;
        public readonly bool OutOfVocabulary;
        public readonly float OutOfVocabularyScore;
        public readonly string Note;
        public readonly string ConditionedText;

        internal static readonly int StructSize = Marshal.SizeOf(typeof(InterpretationStruct));

        internal static InterpretationStruct NewStruct()
        {
            return new InterpretationStruct
            {
                StructSize = StructSize,
                Side = new byte[16],
                ContentLabels = new byte[InterpretationStruct.MaxLabels * InterpretationStruct.LabelChars],
                ContentScores = new float[InterpretationStruct.MaxLabels],
                StyleLabels = new byte[InterpretationStruct.MaxLabels * InterpretationStruct.LabelChars],
                StyleScores = new float[InterpretationStruct.MaxLabels],
                Note = new byte[512],
                ConditionedText = new byte[2048],
            };
        }

        internal Interpretation(InterpretationStruct i)
        {
            Content = Labels(i.ContentLabels, i.ContentScores, i.NumContent);
            Style = Labels(i.StyleLabels, i.StyleScores, i.NumStyle);
            Side = CoamdNative.FromUtf8(i.Side, 0, i.Side.Length);
            OutOfVocabulary = i.OutOfVocabulary != 0;
            OutOfVocabularyScore = i.OutOfVocabularyScore;
            Note = CoamdNative.FromUtf8(i.Note, 0, i.Note.Length);
            ConditionedText = CoamdNative.FromUtf8(i.ConditionedText, 0, i.ConditionedText.Length);
        }

        static LabelScore[] Labels(byte[] names, float[] scores, int n)
        {
            n = Math.Max(0, Math.Min(n, InterpretationStruct.MaxLabels));
            var out_ = new LabelScore[n];
            for (int k = 0; k < n; k++)
                out_[k] = new LabelScore(CoamdNative.FromUtf8(names, k * InterpretationStruct.LabelChars,
                    InterpretationStruct.LabelChars), scores[k]);
            return out_;
        }

        /// <summary>The best content label ("" when none).</summary>
        public string TopContent => Content.Count > 0 ? Content[0].Label : "";
        /// <summary>The best style label ("" when none).</summary>
        public string TopStyle => Style.Count > 0 ? Style[0].Label : "";
    }

    /// <summary>One action or style the model was trained on.</summary>
    public sealed class CapabilityInfo
    {
        /// <summary>e.g. "wave-left-hand", "elderly".</summary>
        public readonly string Label;
        /// <summary>A plain sentence, e.g. "a person waves the left hand".</summary>
        public readonly string Description;
        /// <summary>Training-split clips with this label (mirrored copies not counted).</summary>
        public readonly int TrainingClips;
        /// <summary>"left", "right", "both" or "".</summary>
        public readonly string Side;
        /// <summary>For an action: the styles it was recorded in; for a style: the actions recorded
        /// in it; each with its training clips of that pair (ABI version 5). Empty when the
        /// server's checkpoint carries no pair counts.</summary>
        public IReadOnlyDictionary<string, int> RecordedWith { get; internal set; }

        internal CapabilityInfo(CapabilityStruct c)
        {
            Label = CoamdNative.FromUtf8(c.Label, 0, c.Label.Length);
            Description = CoamdNative.FromUtf8(c.Description, 0, c.Description.Length);
            Side = CoamdNative.FromUtf8(c.Side, 0, c.Side.Length);
            TrainingClips = (int)c.TrainingClips;
            RecordedWith = new Dictionary<string, int>();
        }
    }

    /// <summary>What the server's model knows (MotionClient.GetCapabilities).</summary>
    public sealed class Capabilities
    {
        public readonly IReadOnlyList<CapabilityInfo> Actions;
        public readonly IReadOnlyList<CapabilityInfo> Styles;
        public readonly float MinDurationSeconds, MaxDurationSeconds, Fps;
        public readonly int MaxTextChars;
        /// <summary>Actions with fewer training clips than this are followed less reliably.</summary>
        public readonly int RareBelowClips;

        internal static readonly int StructSize = Marshal.SizeOf(typeof(CapabilitiesStruct));
        static readonly int CapabilitySize = Marshal.SizeOf(typeof(CapabilityStruct));

        internal static CapabilityStruct[] NewArray(int n)
        {
            var a = new CapabilityStruct[Math.Max(0, n)];
            for (int i = 0; i < a.Length; i++)
            {
                a[i].StructSize = CapabilitySize;
                a[i].Label = new byte[64];
                a[i].Side = new byte[16];
                a[i].Description = new byte[256];
            }
            return a;
        }

        /// <summary>Training clips of each (action, style) pair, row-major in Actions x Styles order
        /// (coamd_client_pair_clips); null when the native library predates ABI version 5.</summary>
        readonly uint[] _pairs;

        internal Capabilities(CapabilitiesStruct c, CapabilityStruct[] actions, CapabilityStruct[] styles,
                              uint[] pairClips = null)
        {
            var a = new CapabilityInfo[Math.Min(actions.Length, c.NumActions)];
            for (int i = 0; i < a.Length; i++) a[i] = new CapabilityInfo(actions[i]);
            var s = new CapabilityInfo[Math.Min(styles.Length, c.NumStyles)];
            for (int i = 0; i < s.Length; i++) s[i] = new CapabilityInfo(styles[i]);
            Actions = a;
            Styles = s;
            if (pairClips != null && pairClips.Length == a.Length * s.Length)
            {
                _pairs = pairClips;
                for (int i = 0; i < a.Length; i++)
                {
                    var byStyle = new Dictionary<string, int>();
                    for (int j = 0; j < s.Length; j++)
                        if (pairClips[i * s.Length + j] > 0) byStyle[s[j].Label] = (int)pairClips[i * s.Length + j];
                    a[i].RecordedWith = byStyle;
                }
                for (int j = 0; j < s.Length; j++)
                {
                    var byAction = new Dictionary<string, int>();
                    for (int i = 0; i < a.Length; i++)
                        if (pairClips[i * s.Length + j] > 0) byAction[a[i].Label] = (int)pairClips[i * s.Length + j];
                    s[j].RecordedWith = byAction;
                }
            }
            MinDurationSeconds = c.MinDurationS;
            MaxDurationSeconds = c.MaxDurationS;
            Fps = c.Fps;
            MaxTextChars = (int)c.MaxTextChars;
            RareBelowClips = (int)c.RareBelowClips;
        }

        /// <summary>Training clips of the (action, style) pair; 0 when never recorded or unknown.</summary>
        public int PairClips(string action, string style)
        {
            if (_pairs == null) return 0;
            int i = IndexOf(Actions, action), j = IndexOf(Styles, style);
            return i < 0 || j < 0 ? 0 : (int)_pairs[i * Styles.Count + j];
        }

        /// <summary>Whether a request for the action in the style gets that style: false when the
        /// action has at least RareBelowClips training clips but none in the style (the server then
        /// generates the action without it and its interpretation's note says so). True when the
        /// pair counts are unknown.</summary>
        public bool GeneratesStyle(string action, string style)
        {
            int i = IndexOf(Actions, action);
            if (_pairs == null || i < 0 || IndexOf(Styles, style) < 0) return true;
            return Actions[i].TrainingClips < RareBelowClips || PairClips(action, style) > 0;
        }

        static int IndexOf(IReadOnlyList<CapabilityInfo> xs, string label)
        {
            for (int k = 0; k < xs.Count; k++)
                if (xs[k].Label == label) return k;
            return -1;
        }
    }

    /// <summary>Settings of a session and its playback.</summary>
    public class SessionOptions
    {
        public ulong Seed;
        public Guidance Guidance = Guidance.ServerDefault;
        public float GuidanceScale;
        public float CfgScale;
        /// <summary>Masked-AR iterations per window; 0 = server default.</summary>
        public uint Iterations;
        public uint OdeSteps;
        public Coords Coordinates = Coords.Unity;
        public bool ServerRotations;
        public Cleanup Cleanup = Cleanup.ServerDefault;
        public float Temperature;
        public TextConditioning TextConditioning = TextConditioning.ServerDefault;
        /// <summary>How far ahead of real time the server keeps the stream; 0 = server default (1 s).
        /// Larger absorbs network jitter, smaller reacts sooner to a new instruction.</summary>
        public float LookaheadSeconds;
        public RootMotionMode RootMotion = RootMotionMode.ServerDefault;
        public float BufferingDelaySeconds = 0.2f;
        /// <summary>Frames the native ring buffer holds; 0 = 1200 (60 s).</summary>
        public uint HistoryFrames;

        static readonly int OptionsSize = Marshal.SizeOf(typeof(SessionOptionsStruct));

        internal SessionOptionsStruct ToNative()
        {
            var o = new SessionOptionsStruct();
            CoamdException.Check(CoamdNative.coamd_session_options_init(ref o, OptionsSize));
            o.Seed = Seed;
            o.Guidance = (int)Guidance;
            o.GuidanceScale = GuidanceScale;
            o.CfgScale = CfgScale;
            o.Iterations = Iterations;
            o.OdeSteps = OdeSteps;
            o.Coordinates = (int)Coordinates;
            o.ServerRotations = ServerRotations ? 1 : 0;
            o.Cleanup = (int)Cleanup;
            o.Temperature = Temperature;
            o.TextConditioning = (int)TextConditioning;
            o.LookaheadS = LookaheadSeconds;
            o.RootMotion = (int)RootMotion;
            o.BufferingDelayS = BufferingDelaySeconds;
            if (HistoryFrames != 0) o.HistoryFrames = HistoryFrames;
            return o;
        }
    }

    /// <summary>One session event: Opened, Instruction (frames from FirstFrame on follow instruction
    /// number Instruction, 0 being the opening text) or Closed (FirstFrame = total frames).</summary>
    public sealed class SessionEvent
    {
        public readonly SessionEventKind Kind;
        public readonly int Instruction;
        public readonly int FirstFrame;
        /// <summary>Instruction received -> its first frame sent, measured on the server.</summary>
        public readonly float LatencyMs;
        /// <summary>How the server understood the instruction's text (null when it sent none).</summary>
        public readonly Interpretation Interpretation;

        internal SessionEvent(SessionEventStruct e, Interpretation interpretation)
        {
            Kind = (SessionEventKind)e.Kind;
            Instruction = (int)e.Instruction;
            FirstFrame = (int)e.FirstFrame;
            LatencyMs = e.LatencyMs;
            Interpretation = interpretation;
        }

        public override string ToString() => Kind + " #" + Instruction + " from frame " + FirstFrame;
    }

    /// <summary>A session (MotionClient.OpenSession): an endless motion, played back like a stream,
    /// whose instruction changes with Instruct(). Frames arrive on a native thread into a ring jitter
    /// buffer; Sample() allocates nothing and takes no lock.</summary>
    public sealed class MotionSession : IDisposable, IMotionSource
    {
        readonly NativeHandle _handle;
        public Coords Coordinates { get; }
        public RootMotionMode RootMotion { get; }
        static readonly int EventSize = Marshal.SizeOf(typeof(SessionEventStruct));

        internal MotionSession(IntPtr handle, Coords coords, RootMotionMode rootMotion)
        {
            _handle = new NativeHandle(handle, h => CoamdNative.coamd_session_destroy(h), nameof(MotionSession));
            Coordinates = coords;
            RootMotion = rootMotion;
        }

        /// <summary>Playback at engine time t (seconds) into pose (one thread at a time).</summary>
        public PlaybackState Sample(double engineTimeSeconds, Pose pose)
        {
            pose.Info.StructSize = Pose.FrameInfoSize;
            CoamdException.Check(CoamdNative.coamd_session_sample(Handle, engineTimeSeconds, ref pose.Info,
                pose.Positions, pose.Positions.Length, pose.LocalRotations, pose.LocalRotations.Length,
                pose.WorldRotations, pose.WorldRotations.Length));
            return (PlaybackState)pose.Info.State;
        }

        /// <summary>Sends a new instruction; returns its number (1, 2, ...), which its Instruction
        /// event carries. CoamdException (State) once the session was closed or ended.</summary>
        public int Instruct(string text)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            uint n;
            CoamdException.Check(CoamdNative.coamd_session_instruct(Handle, CoamdNative.Utf8z(text), out n));
            return (int)n;
        }

        /// <summary>The oldest event not yet taken; false when none is waiting.</summary>
        public bool TryGetEvent(out SessionEvent ev)
        {
            var e = new SessionEventStruct { StructSize = EventSize };
            var i = Interpretation.NewStruct();
            if (!CoamdException.CheckOr(CoamdNative.coamd_session_next_event(Handle, ref e, ref i), Status.NotFound))
            {
                ev = null;
                return false;
            }
            ev = new SessionEvent(e, e.HasInterpretation != 0 ? new Interpretation(i) : null);
            return true;
        }

        /// <summary>Asks the server to end the session: its last frames and a Closed event follow,
        /// then playback finishes on the last frame.</summary>
        public void Close()
        {
            CoamdException.Check(CoamdNative.coamd_session_close(Handle));
        }

        public void Cancel()
        {
            CoamdException.Check(CoamdNative.coamd_session_cancel(Handle));
        }

        /// <summary>Blocks until the session ended (not for the engine thread); false on time-out.</summary>
        public bool Wait(float timeoutSeconds)
        {
            return CoamdException.CheckOr(CoamdNative.coamd_session_wait(Handle, timeoutSeconds), Status.State);
        }

        /// <summary>Why the session failed ("" when it did not), in full.</summary>
        public string Error => _handle.CopyText(CoamdNative.coamd_session_error_copy);

        IntPtr Handle => _handle.Get();

        /// <summary>Cancels the session if it still runs and releases it.</summary>
        public void Dispose()
        {
            _handle.Release();
        }
    }
}
