using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>Drives an avatar's bones from streamed joint positions.
    ///
    /// The avatar's rest pose (its T-pose: joint positions of the mapped Humanoid bones in the avatar
    /// root's space, Unity frame, metres) plays the role of the rest offsets in the native rig solver
    /// (coamd_solve_rotations). For each frame the solver returns per-joint world rotations G_j
    /// relative to that rest pose, so a bone's target rotation is G_j * restRotation_j (in the
    /// avatar root's space). Only directions are used, so the avatar's proportions may differ from
    /// the generated skeleton's; hips translation is scaled by HipsScale (leg-length ratio).
    /// Bones the avatar lacks (optional Humanoid bones) get rest offsets from the motion skeleton,
    /// scaled, and are reported as not driven.</summary>
    public sealed class HumanoidRetarget
    {
        readonly float[] _rest = new float[CoamdNative.PositionFloats];
        readonly float[] _local = new float[CoamdNative.RotationFloats];

        /// <summary>Which joints have an avatar bone to drive.</summary>
        public readonly bool[] Driven = new bool[Skeleton.NumJoints];
        /// <summary>Avatar leg length / motion leg length: multiply streamed translations by it.</summary>
        public float HipsScale { get; }
        /// <summary>Parent-relative rest offsets used for solving (avatar's, gaps filled).</summary>
        public float[] RestOffsets => _rest;

        /// <param name="avatarRestPositions63">joint positions of the avatar in its rest pose (root
        /// space, stream coordinates, metres); NaN x for a bone the avatar lacks. Required bones
        /// (Hips, Spine, Head, arms, legs, feet) must be present.</param>
        /// <param name="motionRestOffsets63">the server skeleton's rest offsets in the same frame
        /// (MotionClient.RestOffsets).</param>
        public HumanoidRetarget(float[] avatarRestPositions63, float[] motionRestOffsets63)
        {
            if (avatarRestPositions63 == null || avatarRestPositions63.Length != CoamdNative.PositionFloats)
                throw new ArgumentException("avatarRestPositions63 must have 63 floats");
            if (motionRestOffsets63 == null || motionRestOffsets63.Length != CoamdNative.PositionFloats)
                throw new ArgumentException("motionRestOffsets63 must have 63 floats");
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                Driven[j] = !float.IsNaN(avatarRestPositions63[3 * j]);
                if (!Driven[j] && !Skeleton.IsOptionalHumanoidBone(j))
                    throw new ArgumentException("the avatar has no " + Skeleton.HumanoidBones[j] +
                                                " bone, which a Humanoid rig requires");
            }
            float avatarLeg = Length(avatarRestPositions63, 14, 13) + Length(avatarRestPositions63, 15, 14);
            float motionLeg = Norm(motionRestOffsets63, 14) + Norm(motionRestOffsets63, 15);
            HipsScale = motionLeg > 1e-6f ? avatarLeg / motionLeg : 1f;
            // Absolute rest positions with the gaps filled from the motion skeleton, then offsets.
            var abs = new float[CoamdNative.PositionFloats];
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                int p = Skeleton.Parents[j];
                for (int k = 0; k < 3; k++)
                {
                    abs[3 * j + k] = Driven[j] ? avatarRestPositions63[3 * j + k]
                                               : abs[3 * p + k] + HipsScale * motionRestOffsets63[3 * j + k];
                    _rest[3 * j + k] = p < 0 ? 0f : abs[3 * j + k] - abs[3 * p + k];
                }
            }
        }

        /// <summary>World rotations (84 floats) of every joint relative to the avatar's rest pose,
        /// for positions (63 floats) in the same frame. Allocates nothing.</summary>
        public void Solve(float[] positions63, float[] worldRotations84)
        {
            CoamdException.Check(CoamdNative.coamd_solve_rotations(positions63, _rest, _local, worldRotations84));
        }

        static float Norm(float[] v, int j)
        {
            float x = v[3 * j], y = v[3 * j + 1], z = v[3 * j + 2];
            return (float)Math.Sqrt(x * x + y * y + z * z);
        }

        static float Length(float[] p, int a, int b)
        {
            float x = p[3 * a] - p[3 * b], y = p[3 * a + 1] - p[3 * b + 1], z = p[3 * a + 2] - p[3 * b + 2];
            return (float)Math.Sqrt(x * x + y * y + z * z);
        }
    }
}
