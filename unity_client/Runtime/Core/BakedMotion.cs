using System;
using System.Text;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>A finished motion as keyframes, ready to become an animation clip: for each of its
    /// frames (20 fps) the joint positions and the local rotations relative to the skeleton's rest
    /// offsets, in Unity's frame, motion space (the root travels). Quaternion signs are made
    /// continuous from frame to frame (q and -q are the same rotation; curves that flip between them
    /// would interpolate through other rotations). The Editor's bake window turns it into a
    /// Humanoid clip (muscle curves) or a Generic clip on SourceSkeleton's transform paths.</summary>
    public sealed class BakedMotion
    {
        public readonly int FrameCount;
        public readonly float Fps = CoamdNative.Fps;
        /// <summary>FrameCount x 63 floats.</summary>
        public readonly float[] Positions;
        /// <summary>FrameCount x 84 floats.</summary>
        public readonly float[] LocalRotations;
        public string Text = "";

        public BakedMotion(int frameCount)
        {
            if (frameCount <= 0) throw new ArgumentOutOfRangeException(nameof(frameCount), "a motion has frames");
            FrameCount = frameCount;
            Positions = new float[frameCount * CoamdNative.PositionFloats];
            LocalRotations = new float[frameCount * CoamdNative.RotationFloats];
        }

        public float DurationSeconds => (FrameCount - 1) / Fps;

        /// <summary>Every frame of a stream that ended completely (its coordinates must be Unity's).</summary>
        /// <exception cref="InvalidOperationException">the stream is still receiving, failed or was
        /// cancelled, or is not in Unity's frame.</exception>
        public static BakedMotion FromStream(MotionStream stream, string text = "")
        {
            if (stream == null) throw new ArgumentNullException(nameof(stream));
            if (stream.Coordinates != Coords.Unity)
                throw new InvalidOperationException("bake a stream requested in Unity coordinates");
            StreamInfo info = stream.Info;
            if (info.Receiving != 0) throw new InvalidOperationException("the stream is still receiving; Wait() first");
            string error = stream.Error;
            if (error.Length > 0) throw new InvalidOperationException("the stream failed: " + error);
            if (info.TotalFrames == 0 || info.TotalFrames != info.FramesReceived)
                throw new InvalidOperationException("the stream did not complete (" + info.FramesReceived + " frames)");
            var m = new BakedMotion((int)info.TotalFrames) { Text = text ?? "" };
            var pos = new float[CoamdNative.PositionFloats];
            var rot = new float[CoamdNative.RotationFloats];
            for (int i = 0; i < m.FrameCount; i++)
            {
                if (!stream.Frame(i, pos, rot)) throw new InvalidOperationException("frame " + i + " is missing");
                Array.Copy(pos, 0, m.Positions, i * CoamdNative.PositionFloats, CoamdNative.PositionFloats);
                Array.Copy(rot, 0, m.LocalRotations, i * CoamdNative.RotationFloats, CoamdNative.RotationFloats);
            }
            m.MakeQuaternionsContinuous();
            return m;
        }

        /// <summary>Flips each joint's quaternion to the hemisphere of the previous frame's.</summary>
        public void MakeQuaternionsContinuous()
        {
            for (int i = 1; i < FrameCount; i++)
                for (int j = 0; j < Skeleton.NumJoints; j++)
                {
                    int a = (i - 1) * CoamdNative.RotationFloats + 4 * j, b = a + CoamdNative.RotationFloats;
                    float d = 0f;
                    for (int k = 0; k < 4; k++) d += LocalRotations[a + k] * LocalRotations[b + k];
                    if (d < 0f)
                        for (int k = 0; k < 4; k++) LocalRotations[b + k] = -LocalRotations[b + k];
                }
        }

        /// <summary>One keyframe value per frame: component k (0..3 = x, y, z, w) of joint j's local
        /// rotation.</summary>
        public float[] RotationCurve(int joint, int component)
        {
            var v = new float[FrameCount];
            for (int i = 0; i < FrameCount; i++) v[i] = LocalRotations[i * CoamdNative.RotationFloats + 4 * joint + component];
            return v;
        }

        /// <summary>One keyframe value per frame: component k (0..2 = x, y, z) of joint j's position.</summary>
        public float[] PositionCurve(int joint, int component)
        {
            var v = new float[FrameCount];
            for (int i = 0; i < FrameCount; i++) v[i] = Positions[i * CoamdNative.PositionFloats + 3 * joint + component];
            return v;
        }
    }

    /// <summary>The motion skeleton as a transform hierarchy for Unity: what the player builds (hidden)
    /// as the source avatar of muscle-space retargeting (HumanPoseHandler), and what baked Generic
    /// clips animate. Bones are named after the joints (Skeleton.JointNames) under a root object;
    /// the hierarchy's T-pose is the reference pose: local positions = rest offsets (the hips at
    /// their reference height), local rotations = the reference pose's.</summary>
    public sealed class SourceSkeleton
    {
        public const string RootName = "CoAMD Source Skeleton";
        public readonly ReferencePose Reference;
        /// <summary>Transform path of each joint below the root ("Hips", "Hips/Spine", ...).</summary>
        public readonly string[] Paths = new string[Skeleton.NumJoints];

        public SourceSkeleton(ReferencePose reference)
        {
            Reference = reference ?? throw new ArgumentNullException(nameof(reference));
            if (reference.Coordinates != Coords.Unity)
                throw new ArgumentException("the source skeleton is built in Unity's frame");
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                var sb = new StringBuilder(Skeleton.JointNames[j]);
                for (int p = Skeleton.Parents[j]; p >= 0; p = Skeleton.Parents[p]) sb.Insert(0, Skeleton.JointNames[p] + "/");
                Paths[j] = sb.ToString();
            }
        }

        /// <summary>Local position of joint j in the T-pose (x, y, z): the rest offset, or for the
        /// hips their reference position above the root.</summary>
        public void LocalPosition(int joint, out float x, out float y, out float z)
        {
            float[] src = joint == 0 ? Reference.Positions : Reference.RestOffsets;
            x = src[3 * joint];
            y = src[3 * joint + 1];
            z = src[3 * joint + 2];
        }

        /// <summary>Local rotation of joint j in the T-pose (x, y, z, w).</summary>
        public void LocalRotation(int joint, out float x, out float y, out float z, out float w)
        {
            float[] q = Reference.LocalRotations;
            x = q[4 * joint];
            y = q[4 * joint + 1];
            z = q[4 * joint + 2];
            w = q[4 * joint + 3];
        }
    }
}
