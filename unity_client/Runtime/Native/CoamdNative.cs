// P/Invoke declarations of the C ABI in bindings/include/coamd/coamd_client.h (libcoamd_client).
// Structs are blittable and laid out like the C structs; every call passes pre-allocated arrays,
// so sampling allocates nothing on the managed heap.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace CoAMD.Native
{
    public enum Status
    {
        Ok = 0, InvalidArgument = 1, Connect = 2, Rpc = 3, State = 4, NotFound = 5, Internal = 6, BufferTooSmall = 7
    }

    /// <summary>Severity of a library or gRPC log message (coamd_log_level).</summary>
    public enum LogLevel
    {
        Debug = 0, Info = 1, Warning = 2, Error = 3, Off = 4
    }

    /// <summary>Playback state of a stream (coamd_state).</summary>
    public enum PlaybackState
    {
        Buffering = 0, Playing = 1, Finished = 2, Error = 3, Cancelled = 4
    }

    /// <summary>Coordinate system of every array a stream returns (coamd_coords).</summary>
    public enum Coords
    {
        RightHandedYUp = 0, Unity = 1, Unreal = 2
    }

    public enum Guidance
    {
        ServerDefault = 0, On = 1, Off = 2
    }

    /// <summary>Foot-contact cleanup of the streamed frames (coamd_cleanup).</summary>
    public enum Cleanup
    {
        ServerDefault = 0, On = 1, Off = 2
    }

    public enum TokenOrder
    {
        ServerDefault = 0, Random = 1, LeftToRight = 2
    }

    /// <summary>What the generator is conditioned on (coamd_text_conditioning, ABI version 4).</summary>
    public enum TextConditioning
    {
        /// <summary>Understood.</summary>
        ServerDefault = 0,
        /// <summary>The understood action and style in the training captions' phrasing, then the text's own words.</summary>
        Understood = 1,
        /// <summary>The text as given (research).</summary>
        Raw = 2
    }

    /// <summary>What the frames are (coamd_skeleton_mode, ABI version 4).</summary>
    public enum SkeletonMode
    {
        /// <summary>FK.</summary>
        ServerDefault = 0,
        /// <summary>Forward kinematics on the server skeleton: bone lengths exact.</summary>
        Fk = 1,
        /// <summary>The model's decoded coordinates (research).</summary>
        Raw = 2
    }

    /// <summary>Where the character's travel goes (coamd_root_motion, ABI version 4).</summary>
    public enum RootMotionMode
    {
        /// <summary>World.</summary>
        ServerDefault = 0,
        /// <summary>The hips travel in the positions.</summary>
        World = 1,
        /// <summary>Hips x/z removed from every frame; the travel comes as FrameInfo's root velocity and heading.</summary>
        InPlace = 2
    }

    /// <summary>Kind of a session event (coamd_session_event_kind).</summary>
    public enum SessionEventKind
    {
        Opened = 1, Instruction = 2, Closed = 3
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct ClientOptions
    {
        public int StructSize;
        public int UseTls;
        public float ConnectTimeoutS;
        public int Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct RequestStruct
    {
        public int StructSize;
        public float DurationS;
        public ulong Seed;
        public int Guidance;
        public float GuidanceScale;
        public float CfgScale;
        public uint Iterations;
        public uint OdeSteps;
        public int Order;
        public int Coordinates;
        public int ServerRotations;
        public float BufferingDelayS;
        public float DeadlineS;
        public uint CapacityFrames;
        public int Cleanup;
        public float Temperature;
        // ---- ABI version 4 ----
        public int TextConditioning;
        public int Skeleton;
        public int RootMotion;
        public int Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct SampleInfo
    {
        public int State;
        public int Frame;
        public float Alpha;
        public float MotionTimeS;
        public uint FramesAvailable;
        public uint TotalFrames;
        public int RebufferCount;
        public int Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct StreamInfo
    {
        public int StructSize;
        public int Receiving;
        public uint FramesReceived;
        public uint TotalFrames;
        public float ClientTtffMs;
        public float ClientTotalMs;
        public float ServerTtffMs;
        public float ServerTotalMs;
        public float ServerQueueMs;
        public int GuidanceApplied;
        public int HasSummary;
        public ulong Seed;
        // ---- ABI version 3 ----
        public int CleanupApplied;
        public float Temperature;
        public uint Iterations;
        public uint OdeSteps;
        public float CfgScale;
        public float GuidanceScale;
        public uint MaxBatch;
        public int Reserved;
        // ---- ABI version 4 ----
        public int SkeletonApplied;
        /// <summary>RootMotionMode the server ran with (0 until the summary).</summary>
        public int RootMotion;
        public int OutOfVocabulary;
        public float OutOfVocabularyScore;
    }

    /// <summary>Metadata of one sampled pose (coamd_frame_info, ABI version 3).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FrameInfo
    {
        public int StructSize;
        public int State;
        /// <summary>Lower frame index of the interpolation, -1 while no frame has arrived.</summary>
        public int Frame;
        public float Alpha;
        /// <summary>Time of the pose in the motion, seconds from frame 0.</summary>
        public double MotionTimeS;
        /// <summary>The engine time the pose was sampled for.</summary>
        public double EngineTimeS;
        public uint FramesAvailable;
        public uint TotalFrames;
        public int RebufferCount;
        public int NumJoints;
        public float Fps;
        public int Coords;
        // ---- ABI version 4 ----
        /// <summary>The hips' horizontal velocity (x, 0, z) in the stream's frame and units per second.</summary>
        public float RootVelocityX;
        public float RootVelocityY;
        public float RootVelocityZ;
        /// <summary>Facing angle (radians) about up; in Unity's frame the transform's yaw (+Z towards +X).</summary>
        public float Heading;
    }

    /// <summary>What the server knows (coamd_capabilities, ABI version 4).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CapabilitiesStruct
    {
        public int StructSize;
        public int NumActions;
        public int NumStyles;
        public float MinDurationS;
        public float MaxDurationS;
        public float Fps;
        public uint MaxTextChars;
        public uint RareBelowClips;
    }

    /// <summary>One action or style (coamd_capability, ABI version 4): texts are NUL-terminated UTF-8.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CapabilityStruct
    {
        public int StructSize;
        public uint TrainingClips;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 64)] public byte[] Label;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)] public byte[] Side;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 256)] public byte[] Description;
    }

    /// <summary>How the server understood a text (coamd_interpretation, ABI version 4).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct InterpretationStruct
    {
        public const int MaxLabels = 8, LabelChars = 64;
        public int StructSize;
        public int NumContent;
        public int NumStyle;
        public int OutOfVocabulary;
        public float OutOfVocabularyScore;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)] public byte[] Side;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = MaxLabels * LabelChars)] public byte[] ContentLabels;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = MaxLabels)] public float[] ContentScores;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = MaxLabels * LabelChars)] public byte[] StyleLabels;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = MaxLabels)] public float[] StyleScores;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 512)] public byte[] Note;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 2048)] public byte[] ConditionedText;
    }

    /// <summary>Settings of a session (coamd_session_options, ABI version 4).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SessionOptionsStruct
    {
        public int StructSize;
        public int Coordinates;
        public ulong Seed;
        public int Guidance;
        public float GuidanceScale;
        public float CfgScale;
        public uint Iterations;
        public uint OdeSteps;
        public int ServerRotations;
        public int Cleanup;
        public float Temperature;
        public int TextConditioning;
        public float LookaheadS;
        public int RootMotion;
        public float BufferingDelayS;
        public uint HistoryFrames;
        public int Reserved;
    }

    /// <summary>One session event (coamd_session_event, ABI version 4).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SessionEventStruct
    {
        public int StructSize;
        public int Kind;
        public uint Instruction;
        public uint FirstFrame;
        public float LatencyMs;
        public int HasInterpretation;
    }

    /// <summary>Receives the library's and gRPC's log messages (any thread, one call at a time).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void LogCallback(int level, IntPtr message, IntPtr userData);

    public static class CoamdNative
    {
        public const string Library = "coamd_client";
        public const int AbiVersion = 5;
        public const int NumJoints = 21;
        public const int PositionFloats = 63;
        public const int RotationFloats = 84;
        public const float Fps = 20f;

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_abi_version();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_last_error();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_joint_name(int joint);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_joint_parent(int joint);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_unity_humanoid_bone(int joint);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_unreal_bone(int joint);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_version();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_build_info();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_set_log_callback(LogCallback callback, int minLevel, IntPtr userData);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_last_error_copy([Out] byte[] buf, int bufLen, out int length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_client_options_defaults(ref ClientOptions options);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_client_create(byte[] target, ref ClientOptions options, byte[] rootCertsPem,
                                                     byte[] bearerToken, out IntPtr client);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_client_destroy(IntPtr client);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_client_skeleton(IntPtr client, int coords, [Out] float[] restOffsets63,
                                                       [Out] int[] parents21);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_client_reference_pose(IntPtr client, int coords, [Out] float[] restOffsets,
                                                             int restOffsetsLen, [Out] float[] referenceLocalRotations,
                                                             int referenceLocalRotationsLen,
                                                             [Out] float[] referencePositions, int referencePositionsLen);

        /// <summary>Fills the first 64 bytes (ABI version 1) only; use coamd_request_init.</summary>
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_request_defaults(ref RequestStruct request);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_request_init(ref RequestStruct request, int structSize);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_start(IntPtr client, byte[] text, ref RequestStruct request,
                                                    out IntPtr stream);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_cancel(IntPtr stream);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_stream_destroy(IntPtr stream);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_sample(IntPtr stream, double engineTimeS, out SampleInfo info,
                                                     [Out] float[] positions63, [Out] float[] localRotations84,
                                                     [Out] float[] worldRotations84);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_sample_motion_time(IntPtr stream, double motionTimeS,
                                                                 [Out] float[] positions63,
                                                                 [Out] float[] localRotations84,
                                                                 [Out] float[] worldRotations84);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_frame(IntPtr stream, uint index, [Out] float[] positions63,
                                                    [Out] float[] localRotations84);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_info_get(IntPtr stream, ref StreamInfo info);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_error(IntPtr stream, [Out] byte[] buf, int bufLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_wait(IntPtr stream, float timeoutS);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_restart_playback(IntPtr stream);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_error_copy(IntPtr stream, [Out] byte[] buf, int bufLen, out int length);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_sample_at(IntPtr stream, double motionTimeS, ref FrameInfo info,
                                                        [Out] float[] positions, int positionsLen,
                                                        [Out] float[] localRotations, int localRotationsLen,
                                                        [Out] float[] worldRotations, int worldRotationsLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_frame_copy(IntPtr stream, uint index, [Out] float[] positions,
                                                         int positionsLen, [Out] float[] localRotations,
                                                         int localRotationsLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_reader_create(IntPtr stream, byte[] subjectName, float bufferingDelayS,
                                                     out IntPtr reader);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_reader_destroy(IntPtr reader);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr coamd_reader_subject_name(IntPtr reader);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_reader_sample(IntPtr reader, double engineTimeS, ref FrameInfo info,
                                                     [Out] float[] positions, int positionsLen,
                                                     [Out] float[] localRotations, int localRotationsLen,
                                                     [Out] float[] worldRotations, int worldRotationsLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_reader_restart(IntPtr reader);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_client_capabilities(IntPtr client, ref CapabilitiesStruct caps,
                                                           [In, Out] CapabilityStruct[] actions, int actionsLen,
                                                           [In, Out] CapabilityStruct[] styles, int stylesLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_stream_interpretation(IntPtr stream, ref InterpretationStruct interpretation);
        // ---- ABI version 5 ----
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_client_pair_clips(IntPtr client, [Out] uint[] counts, int countsLen,
                                                         out int numPairs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_options_init(ref SessionOptionsStruct options, int structSize);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_open(IntPtr client, ref SessionOptionsStruct options, byte[] text,
                                                    out IntPtr session);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_instruct(IntPtr session, byte[] text, out uint instruction);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_close(IntPtr session);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_cancel(IntPtr session);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void coamd_session_destroy(IntPtr session);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_sample(IntPtr session, double engineTimeS, ref FrameInfo info,
                                                      [Out] float[] positions, int positionsLen,
                                                      [Out] float[] localRotations, int localRotationsLen,
                                                      [Out] float[] worldRotations, int worldRotationsLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_next_event(IntPtr session, ref SessionEventStruct ev,
                                                          ref InterpretationStruct interpretation);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_wait(IntPtr session, float timeoutS);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_session_error_copy(IntPtr session, [Out] byte[] buf, int bufLen, out int length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_convert_positions(float[] input, int count, int fromCoords, int toCoords,
                                                         [Out] float[] output);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_convert_rotations(float[] input, int count, int fromCoords, int toCoords,
                                                         [Out] float[] output);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_solve_rotations(float[] positions63, float[] restOffsets63,
                                                       [Out] float[] localRotations84, [Out] float[] worldRotations84);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_forward_kinematics(float[] root3, float[] localRotations84,
                                                          float[] restOffsets63, [Out] float[] positions63);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int coamd_reference_pose(float[] restOffsets, int restOffsetsLen, int coords,
                                                      [Out] float[] referenceLocalRotations,
                                                      int referenceLocalRotationsLen,
                                                      [Out] float[] referencePositions, int referencePositionsLen);

        /// <summary>NUL-terminated UTF-8 bytes of s (null stays null).</summary>
        public static byte[] Utf8z(string s)
        {
            if (s == null) return null;
            var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A NUL-terminated UTF-8 string owned by the library (null for a null pointer).</summary>
        public static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>The NUL-terminated UTF-8 text in bytes[offset, offset + count).</summary>
        public static string FromUtf8(byte[] bytes, int offset, int count)
        {
            if (bytes == null) return "";
            int n = 0;
            while (n < count && offset + n < bytes.Length && bytes[offset + n] != 0) n++;
            return Encoding.UTF8.GetString(bytes, offset, n);
        }

        public static string LastError()
        {
            return FromUtf8(coamd_last_error()) ?? "";
        }

        /// <summary>A text the library copies through a (buf, bufLen, out length) function, in full:
        /// asks for the length first, then copies.</summary>
        internal delegate int TextCopy(byte[] buf, int bufLen, out int length);

        internal static string CopyText(TextCopy copy)
        {
            int length;
            int rc = copy(null, 0, out length);
            if (rc != (int)Status.Ok && rc != (int)Status.BufferTooSmall) return null;
            var buf = new byte[length + 1];
            rc = copy(buf, buf.Length, out length);
            if (rc != (int)Status.Ok) return null;
            return Encoding.UTF8.GetString(buf, 0, length);
        }
    }
}
