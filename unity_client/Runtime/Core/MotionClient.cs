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

        internal RequestStruct ToNative()
        {
            var r = new RequestStruct();
            CoamdNative.coamd_request_defaults(ref r);
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
            return r;
        }
    }

    /// <summary>A connection to `coamd serve` ("host:port"); fetches the skeleton on connect.</summary>
    public sealed class MotionClient : IDisposable
    {
        IntPtr _handle;

        /// <exception cref="CoamdException">Connect when the server does not answer in time,
        /// Rpc for an error status (e.g. UNAUTHENTICATED), InvalidArgument for a bad address.</exception>
        public MotionClient(string address, bool useTls = false, string rootCertsPem = null,
                            string bearerToken = null, float connectTimeoutSeconds = 5f)
        {
            var o = new ClientOptions();
            CoamdNative.coamd_client_options_defaults(ref o);
            o.UseTls = useTls ? 1 : 0;
            o.ConnectTimeoutS = connectTimeoutSeconds;
            CoamdException.Check(CoamdNative.coamd_client_create(CoamdNative.Utf8z(address), ref o,
                CoamdNative.Utf8z(rootCertsPem), CoamdNative.Utf8z(bearerToken), out _handle));
        }

        /// <summary>Rest offsets (21 x 3 floats, parent-relative) in the given frame.</summary>
        public float[] RestOffsets(Coords coords)
        {
            var rest = new float[CoamdNative.PositionFloats];
            CoamdException.Check(CoamdNative.coamd_client_skeleton(Handle, (int)coords, rest, null));
            return rest;
        }

        /// <summary>Starts a Generate stream; frames arrive on a native background thread.</summary>
        public MotionStream Generate(string text, MotionRequest request)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            if (request == null) throw new ArgumentNullException(nameof(request));
            var r = request.ToNative();
            IntPtr s;
            CoamdException.Check(CoamdNative.coamd_stream_start(Handle, CoamdNative.Utf8z(text), ref r, out s));
            return new MotionStream(s, request.Coordinates);
        }

        IntPtr Handle
        {
            get
            {
                if (_handle == IntPtr.Zero) throw new ObjectDisposedException(nameof(MotionClient));
                return _handle;
            }
        }

        public void Dispose()
        {
            if (_handle != IntPtr.Zero) CoamdNative.coamd_client_destroy(_handle);
            _handle = IntPtr.Zero;
            GC.SuppressFinalize(this);
        }

        ~MotionClient()
        {
            if (_handle != IntPtr.Zero) CoamdNative.coamd_client_destroy(_handle);
        }
    }

    /// <summary>A Generate stream with its jitter buffer and playback clock.</summary>
    public sealed class MotionStream : IDisposable
    {
        IntPtr _handle;
        public Coords Coordinates { get; }

        internal MotionStream(IntPtr handle, Coords coords)
        {
            _handle = handle;
            Coordinates = coords;
        }

        /// <summary>Samples playback at engine time t (seconds) into pose; allocates nothing.
        /// Call from one thread (the engine's main thread).</summary>
        public PlaybackState Sample(double engineTimeSeconds, Pose pose)
        {
            SampleInfo info;
            CoamdException.Check(CoamdNative.coamd_stream_sample(Handle, engineTimeSeconds, out info,
                pose.Positions, pose.LocalRotations, pose.WorldRotations));
            pose.Info = info;
            return (PlaybackState)info.State;
        }

        /// <summary>The pose at a motion time (seconds from frame 0); false if not received yet.</summary>
        public bool SampleMotionTime(double motionTimeSeconds, Pose pose)
        {
            int rc = CoamdNative.coamd_stream_sample_motion_time(Handle, motionTimeSeconds, pose.Positions,
                pose.LocalRotations, pose.WorldRotations);
            if (rc == (int)Status.NotFound) return false;
            CoamdException.Check(rc);
            return true;
        }

        /// <summary>Frame index exactly as received; false if not received yet.</summary>
        public bool Frame(int index, float[] positions63, float[] localRotations84)
        {
            if (index < 0) throw new ArgumentOutOfRangeException(nameof(index));
            int rc = CoamdNative.coamd_stream_frame(Handle, (uint)index, positions63, localRotations84);
            if (rc == (int)Status.NotFound) return false;
            CoamdException.Check(rc);
            return true;
        }

        public StreamInfo Info
        {
            get
            {
                var i = new StreamInfo();
                i.StructSize = System.Runtime.InteropServices.Marshal.SizeOf(typeof(StreamInfo));
                CoamdException.Check(CoamdNative.coamd_stream_info_get(Handle, ref i));
                return i;
            }
        }

        /// <summary>Why the stream failed ("" when it did not).</summary>
        public string Error
        {
            get
            {
                var buf = new byte[1024];
                CoamdException.Check(CoamdNative.coamd_stream_error(Handle, buf, buf.Length));
                int n = Array.IndexOf(buf, (byte)0);
                return System.Text.Encoding.UTF8.GetString(buf, 0, n < 0 ? buf.Length : n);
            }
        }

        /// <summary>Blocks until the stream ended (not for the engine thread); false on time-out.</summary>
        public bool Wait(float timeoutSeconds)
        {
            int rc = CoamdNative.coamd_stream_wait(Handle, timeoutSeconds);
            if (rc == (int)Status.State) return false;
            CoamdException.Check(rc);
            return true;
        }

        public void Cancel()
        {
            CoamdException.Check(CoamdNative.coamd_stream_cancel(Handle));
        }

        public void RestartPlayback()
        {
            CoamdException.Check(CoamdNative.coamd_stream_restart_playback(Handle));
        }

        IntPtr Handle
        {
            get
            {
                if (_handle == IntPtr.Zero) throw new ObjectDisposedException(nameof(MotionStream));
                return _handle;
            }
        }

        public void Dispose()
        {
            if (_handle != IntPtr.Zero) CoamdNative.coamd_stream_destroy(_handle);
            _handle = IntPtr.Zero;
            GC.SuppressFinalize(this);
        }

        ~MotionStream()
        {
            if (_handle != IntPtr.Zero) CoamdNative.coamd_stream_destroy(_handle);
        }
    }
}
