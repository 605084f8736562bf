using CoAMD.Native;

namespace CoAMD
{
    /// <summary>One sampled pose: pre-allocated arrays the native library writes into.
    /// Positions 21 x 3, rotations 21 x 4 quaternions (x, y, z, w), in the stream's coordinates;
    /// local rotations are parent-relative, world rotations are relative to the rest pose.</summary>
    public sealed class Pose
    {
        public readonly float[] Positions = new float[CoamdNative.PositionFloats];
        public readonly float[] LocalRotations = new float[CoamdNative.RotationFloats];
        public readonly float[] WorldRotations = new float[CoamdNative.RotationFloats];
        /// <summary>What the last Sample() reported (state, frame, alpha, motion time, frames received...).</summary>
        public FrameInfo Info;

        internal static readonly int FrameInfoSize = System.Runtime.InteropServices.Marshal.SizeOf(typeof(FrameInfo));

        public Pose()
        {
            Info.StructSize = FrameInfoSize;
            Info.Frame = -1;
        }

        public PlaybackState State => (PlaybackState)Info.State;
        /// <summary>False until the first frame has arrived (the arrays are then untouched).</summary>
        public bool HasFrame => Info.Frame >= 0;
    }
}
