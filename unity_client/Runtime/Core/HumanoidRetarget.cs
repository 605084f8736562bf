using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>Drives an avatar's bones directly from streamed joint positions (bone directions, no
    /// muscle space).
    ///
    /// The avatar's rest pose (its T-pose: positions of the mapped Humanoid bones in the avatar
    /// root's space, Unity frame, metres) plays the role of the rest offsets in the native rig
    /// solver (coamd_solve_rotations). For each frame the solver returns per-joint world rotations
    /// G_j relative to that rest pose, so a bone's target rotation is G_j * restRotation_j (in the
    /// avatar root's space). Only directions are used, so the avatar's proportions may differ from
    /// the generated skeleton's; hips translation is scaled by HipsScale (leg-length ratio).
    ///
    /// Bones the avatar lacks (Unity's optional Chest, Neck, Shoulders, Toes):
    /// - a missing joint between two present ones (Chest, Neck, a Shoulder) is placed on the
    ///   straight segment from its nearest present ancestor to its nearest present descendant, at
    ///   the ratio of the motion skeleton's bone lengths, in the rest pose and in every streamed
    ///   frame alike. The ancestor's bone then carries the whole segment, so the avatar bone points
    ///   along the streamed segment (e.g. without a Chest the Spine bone points from the streamed
    ///   spine to the streamed neck and takes the chest's twist from the shoulder line);
    /// - missing Toes are placed where the motion skeleton's upright reference pose has them
    ///   relative to the foot (forward, 40 degrees down, scaled): the foot then turns with the
    ///   streamed ankle, measured from a foot in that reference pose.
    /// A frame equal to the avatar's own rest pose therefore gives identity rotations everywhere,
    /// with or without the optional bones (for missing Toes: when its feet match the reference).</summary>
    public sealed class HumanoidRetarget
    {
        const int Hips = 0, Spine = 1, Chest = 2;

        readonly float[] _rest = new float[CoamdNative.PositionFloats];
        readonly float[] _posed = new float[CoamdNative.PositionFloats];
        readonly float[] _local = new float[CoamdNative.RotationFloats];
        readonly float[] _world = new float[CoamdNative.RotationFloats];
        // Joints placed on a segment: joint, segment start (present ancestor), end, ratio.
        readonly int[] _fillJoint = new int[Skeleton.NumJoints];
        readonly int[] _fillFrom = new int[Skeleton.NumJoints];
        readonly int[] _fillTo = new int[Skeleton.NumJoints];
        readonly float[] _fillRatio = new float[Skeleton.NumJoints];
        readonly int _fillCount;
        // Joint whose solved rotation drives each avatar bone.
        readonly int[] _source = new int[Skeleton.NumJoints];

        /// <summary>Which joints have an avatar bone to drive.</summary>
        public readonly bool[] Driven = new bool[Skeleton.NumJoints];
        /// <summary>Avatar leg length / motion leg length: multiply streamed translations by it.</summary>
        public float HipsScale { get; }
        /// <summary>Parent-relative rest offsets used for solving (the avatar's, gaps filled).</summary>
        public float[] RestOffsets => _rest;
        /// <summary>The rest positions used for solving (63 floats: the avatar's, gaps filled).</summary>
        public readonly float[] RestPositions = new float[CoamdNative.PositionFloats];

        /// <param name="avatarRestPositions63">joint positions of the avatar in its rest pose (root
        /// space, Unity frame, metres); NaN x for a bone the avatar lacks. Required bones (Hips,
        /// Spine, Head, arms, legs, feet) must be present.</param>
        /// <param name="motionReferencePositions63">the motion skeleton's upright reference pose in
        /// the same frame (ReferencePose.Positions, e.g. MotionClient.ReferencePose(Coords.Unity)).</param>
        public HumanoidRetarget(float[] avatarRestPositions63, float[] motionReferencePositions63)
        {
            if (avatarRestPositions63 == null || avatarRestPositions63.Length != CoamdNative.PositionFloats)
                throw new ArgumentException("avatarRestPositions63 must have 63 floats");
            if (motionReferencePositions63 == null || motionReferencePositions63.Length != CoamdNative.PositionFloats)
                throw new ArgumentException("motionReferencePositions63 must have 63 floats");
            float[] avatar = avatarRestPositions63, reference = motionReferencePositions63;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                Driven[j] = !float.IsNaN(avatar[3 * j]);
                if (!Driven[j] && !Skeleton.IsOptionalHumanoidBone(j))
                    throw new ArgumentException("the avatar has no " + Skeleton.HumanoidBones[j] +
                                                " bone, which a Humanoid rig requires");
                _source[j] = j;
            }
            float avatarLeg = Distance(avatar, 13, 14) + Distance(avatar, 14, 15);
            float motionLeg = Distance(reference, 13, 14) + Distance(reference, 14, 15);
            HipsScale = motionLeg > 1e-6f ? avatarLeg / motionLeg : 1f;

            Array.Copy(avatar, RestPositions, CoamdNative.PositionFloats);
            int fills = 0;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                if (Driven[j]) continue;
                int child = FirstChild(j);
                if (child < 0)
                {
                    // A missing leaf (Toes): where the reference pose has it relative to its parent.
                    int p = Skeleton.Parents[j];
                    for (int k = 0; k < 3; k++)
                        RestPositions[3 * j + k] = RestPositions[3 * p + k] +
                                                   HipsScale * (reference[3 * j + k] - reference[3 * p + k]);
                    continue;
                }
                int from = Skeleton.Parents[j];
                while (!Driven[from]) from = Skeleton.Parents[from];
                int to = child;
                while (!Driven[to]) to = FirstChild(to);
                float along = PathLength(reference, from, j), total = along + PathLength(reference, j, to);
                float ratio = total > 1e-9f ? along / total : 0.5f;
                _fillJoint[fills] = j;
                _fillFrom[fills] = from;
                _fillTo[fills] = to;
                _fillRatio[fills] = ratio;
                fills++;
                Place(RestPositions, j, from, to, ratio);
            }
            _fillCount = fills;
            // Without a Chest the avatar's Spine carries the neck and shoulders: it takes the
            // (straightened) chest's rotation, which aligns the neck and the shoulder line.
            if (!Driven[Chest]) _source[Spine] = Chest;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                int p = Skeleton.Parents[j];
                for (int k = 0; k < 3; k++)
                    _rest[3 * j + k] = p < 0 ? 0f : RestPositions[3 * j + k] - RestPositions[3 * p + k];
            }
            if (!Driven[Hips]) throw new ArgumentException("the avatar has no Hips bone");
        }

        /// <summary>World rotations (84 floats) of every avatar bone relative to the avatar's rest
        /// pose, for streamed positions (63 floats) in the same frame. Bones the avatar lacks get
        /// the rotation their joint was solved with. Allocates nothing.</summary>
        public void Solve(float[] positions63, float[] worldRotations84)
        {
            if (positions63 == null || positions63.Length < CoamdNative.PositionFloats)
                throw new ArgumentException("positions63 must have 63 floats");
            if (worldRotations84 == null || worldRotations84.Length < CoamdNative.RotationFloats)
                throw new ArgumentException("worldRotations84 must have 84 floats");
            Array.Copy(positions63, _posed, CoamdNative.PositionFloats);
            for (int i = 0; i < _fillCount; i++) Place(_posed, _fillJoint[i], _fillFrom[i], _fillTo[i], _fillRatio[i]);
            CoamdException.Check(CoamdNative.coamd_solve_rotations(_posed, _rest, _local, _world));
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                int s = _source[j];
                for (int k = 0; k < 4; k++) worldRotations84[4 * j + k] = _world[4 * s + k];
            }
        }

        static void Place(float[] p, int joint, int from, int to, float ratio)
        {
            for (int k = 0; k < 3; k++) p[3 * joint + k] = p[3 * from + k] + ratio * (p[3 * to + k] - p[3 * from + k]);
        }

        /// <summary>The first child of a joint (lowest index), -1 for a leaf.</summary>
        static int FirstChild(int joint)
        {
            for (int c = joint + 1; c < Skeleton.NumJoints; c++)
                if (Skeleton.Parents[c] == joint) return c;
            return -1;
        }

        /// <summary>Length of the bone chain from ancestor a down to descendant d.</summary>
        static float PathLength(float[] p, int a, int d)
        {
            float sum = 0f;
            for (int j = d; j != a && j >= 0; j = Skeleton.Parents[j]) sum += Distance(p, j, Skeleton.Parents[j]);
            return sum;
        }

        static float Distance(float[] p, int a, int b)
        {
            float x = p[3 * a] - p[3 * b], y = p[3 * a + 1] - p[3 * b + 1], z = p[3 * a + 2] - p[3 * b + 2];
            return (float)Math.Sqrt(x * x + y * y + z * z);
        }
    }
}
