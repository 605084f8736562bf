// Managed wrapper of the native client: a connection and its Generate streams.
using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>A native-library call failed; Status says how, Message says why.</summary>
    public class CoamdException : Exception
    {
        public Status Status { get; }

        public CoamdException(Status status, string message) : base(message)
        {
            Status = status;
        }

        internal static void Check(int rc)
        {
            if (rc != 0) throw new CoamdException((Status)rc, CoamdNative.LastError());
        }

        /// <summary>Check, except for one status a call may answer (NotFound: not there yet, State: a
        /// wait timed out): true for Ok, false for that one.</summary>
        internal static bool CheckOr(int rc, Status expected)
        {
            if (rc == (int)expected) return false;
            Check(rc);
            return true;
        }
    }

    /// <summary>Settings of one generation request and its playback.</summary>
    public class MotionRequest
    {
        /// <summary>Length of the motion in seconds (the server accepts 0.4 .. 12).</summary>
        public float DurationSeconds = 4f;
        public ulong Seed;
        /// <summary>Action-recognizer guidance: On for quality, Off for speed.</summary>
        public Guidance Guidance = Guidance.ServerDefault;
        public float GuidanceScale;
        /// <summary>Classifier-free guidance scale; 0 = server default.</summary>
        public float CfgScale;
        public uint Iterations;
        public uint OdeSteps;
        public TokenOrder Order = TokenOrder.ServerDefault;
        /// <summary>Frame of every array the stream returns (Unity: left-handed Y-up metres).</summary>
        public Coords Coordinates = Coords.Unity;
        /// <summary>Ask the server for local rotations instead of solving them from positions here.</summary>
        public bool ServerRotations;
        /// <summary>Motion buffered ahead before playback starts or resumes after running dry.</summary>
        public float BufferingDelaySeconds = 0.2f;
        /// <summary>Deadline of the whole stream in seconds; 0 = none.</summary>
        public float DeadlineSeconds;
        /// <summary>Foot-contact cleanup on the server (on by default); Off for the model's raw
        /// frames, e.g. when the character runs its own foot IK.</summary>
        public Cleanup Cleanup = Cleanup.ServerDefault;
        /// <summary>Scale of the flow ODE's starting noise in (0, 2]; 0 = server default (1).</summary>
        public float Temperature;
        /// <summary>What the generator follows: the server's understanding of the text (default) or the raw text.</summary>
        public TextConditioning TextConditioning = TextConditioning.ServerDefault;
        /// <summary>FK (default: bone lengths exact) or the model's raw coordinates.</summary>
        public SkeletonMode Skeleton = SkeletonMode.ServerDefault;
        /// <summary>World (default: the hips travel) or InPlace (travel in each frame's root velocity
        /// and heading, for the character controller).</summary>
        public RootMotionMode RootMotion = RootMotionMode.ServerDefault;

        static readonly int RequestSize = System.Runtime.InteropServices.Marshal.SizeOf(typeof(RequestStruct));

        internal RequestStruct ToNative()
        {
            var r = new RequestStruct();
            CoamdException.Check(CoamdNative.coamd_request_init(ref r, RequestSize));
            r.DurationS = DurationSeconds;
            r.Seed = Seed;
            r.Guidance = (int)Guidance;
            r.GuidanceScale = GuidanceScale;
            r.CfgScale = CfgScale;
            r.Iterations = Iterations;
            r.OdeSteps = OdeSteps;
            r.Order = (int)Order;
            r.Coordinates = (int)Coordinates;
            r.ServerRotations = ServerRotations ? 1 : 0;
            r.BufferingDelayS = BufferingDelaySeconds;
            r.DeadlineS = DeadlineSeconds;
            r.Cleanup = (int)Cleanup;
            r.Temperature = Temperature;
            r.TextConditioning = (int)TextConditioning;
            r.Skeleton = (int)Skeleton;
            r.RootMotion = (int)RootMotion;
            return r;
        }
    }

    /// <summary>A connection to `coamd serve` ("host:port"); fetches the skeleton on connect.</summary>
    public sealed class MotionClient : IDisposable
    {
        readonly NativeHandle _handle;

        /// <exception cref="CoamdException">Connect when the server does not answer in time,
        /// Rpc for an error status (e.g. UNAUTHENTICATED), InvalidArgument for a bad address.</exception>
        public MotionClient(string address, bool useTls = false, string rootCertsPem = null,
                            string bearerToken = null, float connectTimeoutSeconds = 5f)
        {
            var o = new ClientOptions();
            CoamdNative.coamd_client_options_defaults(ref o);
            o.UseTls = useTls ? 1 : 0;
            o.ConnectTimeoutS = connectTimeoutSeconds;
            IntPtr client;
            CoamdException.Check(CoamdNative.coamd_client_create(CoamdNative.Utf8z(address), ref o,
                CoamdNative.Utf8z(rootCertsPem), CoamdNative.Utf8z(bearerToken), out client));
            _handle = new NativeHandle(client, h => CoamdNative.coamd_client_destroy(h), nameof(MotionClient));
        }

        /// <summary>Rest offsets (21 x 3 floats, parent-relative) in the given frame.</summary>
        public float[] RestOffsets(Coords coords)
        {
            var rest = new float[CoamdNative.PositionFloats];
            CoamdException.Check(CoamdNative.coamd_client_skeleton(Handle, (int)coords, rest, null));
            return rest;
        }

        /// <summary>The skeleton's upright reference pose (T-pose) in the given frame: rest offsets,
        /// local rotations relative to them, joint positions (toes on the floor).</summary>
        public ReferencePose ReferencePose(Coords coords)
        {
            var p = new ReferencePose(coords);
            CoamdException.Check(CoamdNative.coamd_client_reference_pose(Handle, (int)coords, p.RestOffsets,
                p.RestOffsets.Length, p.LocalRotations, p.LocalRotations.Length, p.Positions, p.Positions.Length));
            return p;
        }

        /// <summary>Starts a Generate stream; frames arrive on a native background thread.</summary>
        public MotionStream Generate(string text, MotionRequest request)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            if (request == null) throw new ArgumentNullException(nameof(request));
            var r = request.ToNative();
            IntPtr s;
            CoamdException.Check(CoamdNative.coamd_stream_start(Handle, CoamdNative.Utf8z(text), ref r, out s));
            return new MotionStream(s, request.Coordinates, request.RootMotion);
        }

        /// <summary>What the server's model knows: actions and styles with descriptions, training-clip
        /// counts and sides, which styles each action was recorded in, the duration range (fetched
        /// once, then cached by the native client).</summary>
        public Capabilities GetCapabilities()
        {
            var caps = new CapabilitiesStruct { StructSize = Capabilities.StructSize };
            CoamdException.Check(CoamdNative.coamd_client_capabilities(Handle, ref caps, null, 0, null, 0));
            var actions = Capabilities.NewArray(caps.NumActions);
            var styles = Capabilities.NewArray(caps.NumStyles);
            CoamdException.Check(CoamdNative.coamd_client_capabilities(Handle, ref caps, actions, actions.Length,
                styles, styles.Length));
            int numPairs;
            CoamdException.Check(CoamdNative.coamd_client_pair_clips(Handle, null, 0, out numPairs));
            var pairs = new uint[Math.Max(0, numPairs)];
            CoamdException.Check(CoamdNative.coamd_client_pair_clips(Handle, pairs, pairs.Length, out numPairs));
            return new Capabilities(caps, actions, styles, pairs);
        }

        /// <summary>Opens a session: an endless motion whose instruction changes with
        /// MotionSession.Instruct; frames arrive on a native background thread.</summary>
        public MotionSession OpenSession(string text, SessionOptions options)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            if (options == null) throw new ArgumentNullException(nameof(options));
            var o = options.ToNative();
            IntPtr s;
            CoamdException.Check(CoamdNative.coamd_session_open(Handle, ref o, CoamdNative.Utf8z(text), out s));
            return new MotionSession(s, options.Coordinates, options.RootMotion);
        }

        IntPtr Handle => _handle.Get();

        public void Dispose()
        {
            _handle.Release();
        }
    }

    /// <summary>A Generate stream with its jitter buffer and a playback clock (its own reader).</summary>
    public sealed class MotionStream : IDisposable, IMotionSource
    {
        readonly NativeHandle _handle;
        MotionReader _reader;
        public Coords Coordinates { get; }
        /// <summary>The request's root motion: InPlace frames carry the travel in Pose.Info's root velocity and heading.</summary>
        public RootMotionMode RootMotion { get; }

        internal MotionStream(IntPtr handle, Coords coords, RootMotionMode rootMotion = RootMotionMode.ServerDefault)
        {
            _handle = new NativeHandle(handle, h => CoamdNative.coamd_stream_destroy(h), nameof(MotionStream));
            Coordinates = coords;
            RootMotion = rootMotion;
            try
            {
                _reader = CreateReader(null, -1f);
            }
            catch
            {
                _handle.Release();
                throw;
            }
        }

        /// <summary>Samples the stream's playhead at engine time t (seconds) into pose; allocates
        /// nothing. Call from one thread at a time; other threads use their own CreateReader().</summary>
        public PlaybackState Sample(double engineTimeSeconds, Pose pose)
        {
            _handle.Get();  // throws once disposed
            return _reader.Sample(engineTimeSeconds, pose);
        }

        /// <summary>An independent playhead over this stream's frames (its own clock and state),
        /// for another thread or consumer. It keeps the frames alive after this stream is disposed.</summary>
        /// <param name="subjectName">a label (e.g. a Live Link subject); null = "CoAMD"</param>
        /// <param name="bufferingDelaySeconds">below 0: the request's</param>
        public MotionReader CreateReader(string subjectName, float bufferingDelaySeconds)
        {
            IntPtr r;
            CoamdException.Check(CoamdNative.coamd_reader_create(Handle, CoamdNative.Utf8z(subjectName),
                bufferingDelaySeconds, out r));
            return new MotionReader(r);
        }

        /// <summary>The pose at a motion time (seconds from frame 0); false if not received yet.</summary>
        public bool SampleMotionTime(double motionTimeSeconds, Pose pose)
        {
            return CoamdException.CheckOr(CoamdNative.coamd_stream_sample_at(Handle, motionTimeSeconds, ref pose.Info,
                pose.Positions, pose.Positions.Length, pose.LocalRotations, pose.LocalRotations.Length,
                pose.WorldRotations, pose.WorldRotations.Length), Status.NotFound);
        }

        /// <summary>Frame index exactly as received; false if not received yet.</summary>
        public bool Frame(int index, float[] positions63, float[] localRotations84)
        {
            if (index < 0) throw new ArgumentOutOfRangeException(nameof(index));
            return CoamdException.CheckOr(CoamdNative.coamd_stream_frame_copy(Handle, (uint)index, positions63,
                positions63 == null ? 0 : positions63.Length, localRotations84,
                localRotations84 == null ? 0 : localRotations84.Length), Status.NotFound);
        }

        static readonly int StreamInfoSize = System.Runtime.InteropServices.Marshal.SizeOf(typeof(StreamInfo));

        public StreamInfo Info
        {
            get
            {
                var i = new StreamInfo();
                i.StructSize = StreamInfoSize;
                CoamdException.Check(CoamdNative.coamd_stream_info_get(Handle, ref i));
                return i;
            }
        }

        /// <summary>How the server understood the text (from its summary); null until it has arrived.</summary>
        public Interpretation Interpretation
        {
            get
            {
                var i = Interpretation.NewStruct();
                if (!CoamdException.CheckOr(CoamdNative.coamd_stream_interpretation(Handle, ref i), Status.NotFound))
                    return null;
                return new Interpretation(i);
            }
        }

        /// <summary>Why the stream failed ("" when it did not), in full.</summary>
        public string Error => _handle.CopyText(CoamdNative.coamd_stream_error_copy);

        /// <summary>Blocks until the stream ended (not for the engine thread); false on time-out.</summary>
        public bool Wait(float timeoutSeconds)
        {
            return CoamdException.CheckOr(CoamdNative.coamd_stream_wait(Handle, timeoutSeconds), Status.State);
        }

        public void Cancel()
        {
            CoamdException.Check(CoamdNative.coamd_stream_cancel(Handle));
        }

        /// <summary>Replays the stream's own playhead from the start.</summary>
        public void RestartPlayback()
        {
            _handle.Get();  // throws once disposed
            _reader.Restart();
        }

        IntPtr Handle => _handle.Get();

        /// <summary>Cancels the stream if it still runs and releases it; readers created from it
        /// keep what arrived.</summary>
        public void Dispose()
        {
            if (_reader != null) _reader.Dispose();
            _reader = null;
            _handle.Release();
        }
    }

    /// <summary>A playhead over a stream's frames (coamd_reader): its own clock, state and
    /// rebuffering. One thread at a time; different readers need no coordination.</summary>
    public sealed class MotionReader : IDisposable
    {
        readonly NativeHandle _handle;

        internal MotionReader(IntPtr handle)
        {
            _handle = new NativeHandle(handle, h => CoamdNative.coamd_reader_destroy(h), nameof(MotionReader));
        }

        public string SubjectName => CoamdNative.FromUtf8(CoamdNative.coamd_reader_subject_name(Handle));

        /// <summary>Playback at engine time t (seconds) into pose; allocates nothing.</summary>
        public PlaybackState Sample(double engineTimeSeconds, Pose pose)
        {
            pose.Info.StructSize = Pose.FrameInfoSize;
            CoamdException.Check(CoamdNative.coamd_reader_sample(Handle, engineTimeSeconds, ref pose.Info,
                pose.Positions, pose.Positions.Length, pose.LocalRotations, pose.LocalRotations.Length,
                pose.WorldRotations, pose.WorldRotations.Length));
            return (PlaybackState)pose.Info.State;
        }

        /// <summary>Back to buffering at motion time 0 (replay) on this playhead.</summary>
        public void Restart()
        {
            CoamdException.Check(CoamdNative.coamd_reader_restart(Handle));
        }

        IntPtr Handle => _handle.Get();

        public void Dispose()
        {
            _handle.Release();
        }
    }

    /// <summary>The skeleton's upright reference pose (coamd_client_reference_pose) in one frame.</summary>
    public sealed class ReferencePose
    {
        public readonly Coords Coordinates;
        /// <summary>Parent-relative rest offsets (63 floats): every local rotation refers to them.</summary>
        public readonly float[] RestOffsets = new float[CoamdNative.PositionFloats];
        /// <summary>The T-pose as local rotations relative to RestOffsets (84 floats).</summary>
        public readonly float[] LocalRotations = new float[CoamdNative.RotationFloats];
        /// <summary>The T-pose's joint positions (63 floats): hips above the origin, toes on the floor.</summary>
        public readonly float[] Positions = new float[CoamdNative.PositionFloats];

        internal ReferencePose(Coords coords)
        {
            Coordinates = coords;
        }

        /// <summary>The reference pose of any rest offsets (given in coords), without a client.</summary>
        public static ReferencePose FromRestOffsets(float[] restOffsets63, Coords coords)
        {
            if (restOffsets63 == null || restOffsets63.Length != CoamdNative.PositionFloats)
                throw new ArgumentException("restOffsets63 must have 63 floats");
            var p = new ReferencePose(coords);
            Array.Copy(restOffsets63, p.RestOffsets, CoamdNative.PositionFloats);
            CoamdException.Check(CoamdNative.coamd_reference_pose(p.RestOffsets, p.RestOffsets.Length, (int)coords,
                p.LocalRotations, p.LocalRotations.Length, p.Positions, p.Positions.Length));
            return p;
        }
    }

    /// <summary>The native library itself: versions and its log.</summary>
    public static class CoamdLibrary
    {
        /// <summary>"MAJOR.MINOR.PATCH" of the loaded native library.</summary>
        public static string Version => CoamdNative.FromUtf8(CoamdNative.coamd_version());
        /// <summary>Library, ABI, gRPC and protobuf versions in one line (for bug reports).</summary>
        public static string BuildInfo => CoamdNative.FromUtf8(CoamdNative.coamd_build_info());
        public static int AbiVersion => CoamdNative.coamd_abi_version();

        static readonly object Gate = new object();
        static Action<LogLevel, string> _handler;
        // Kept in a static field: the native library holds only its function pointer.
        static readonly LogCallback Callback = OnLog;

        /// <summary>Routes the library's and gRPC's messages at or above minLevel to handler
        /// (called on native threads, one message at a time); null restores stderr. Call
        /// SetLogHandler(null, LogLevel.Off) before the handler's code is unloaded.</summary>
        public static void SetLogHandler(Action<LogLevel, string> handler, LogLevel minLevel)
        {
            lock (Gate)
            {
                _handler = handler;
                CoamdException.Check(CoamdNative.coamd_set_log_callback(handler != null ? Callback : null,
                    (int)minLevel, IntPtr.Zero));
            }
        }

        [MonoPInvokeCallback(typeof(LogCallback))]
        static void OnLog(int level, IntPtr message, IntPtr userData)
        {
            Action<LogLevel, string> h = _handler;
            if (h == null) return;
            try
            {
                h((LogLevel)level, CoamdNative.FromUtf8(message) ?? "");
            }
            catch (Exception)
            {
                // An exception must not unwind into native code.
            }
        }
    }

    /// <summary>Marks a static method called from native code (IL2CPP needs it for AOT).</summary>
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        public Type DelegateType { get; }
    }
}
