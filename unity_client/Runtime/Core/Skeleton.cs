using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>The 21-joint skeleton (DESIGN.md section 4) and its mapping to Unity's Humanoid bones.</summary>
    public static class Skeleton
    {
        public const int NumJoints = 21;

        public static readonly string[] JointNames =
        {
            "Hips", "Spine", "Chest", "Neck", "Head",
            "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L",
            "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R",
            "UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L",
            "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R",
        };

        public static readonly int[] Parents = { -1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19 };

        /// <summary>UnityEngine.HumanBodyBones member names, by joint (Enum.Parse them in Unity).
        /// "Left" is the character's own left side in every coordinate system.</summary>
        public static readonly string[] HumanoidBones =
        {
            "Hips", "Spine", "Chest", "Neck", "Head",
            "LeftShoulder", "LeftUpperArm", "LeftLowerArm", "LeftHand",
            "RightShoulder", "RightUpperArm", "RightLowerArm", "RightHand",
            "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "LeftToes",
            "RightUpperLeg", "RightLowerLeg", "RightFoot", "RightToes",
        };

        /// <summary>Humanoid bones an avatar may lack (Unity's optional bones).</summary>
        public static bool IsOptionalHumanoidBone(int joint)
        {
            string b = HumanoidBones[joint];
            return b == "Chest" || b == "Neck" || b.EndsWith("Shoulder", StringComparison.Ordinal) ||
                   b.EndsWith("Toes", StringComparison.Ordinal);
        }

        /// <summary>Joint index of a Humanoid bone name, -1 if the skeleton has none.</summary>
        public static int JointOfHumanoidBone(string bone)
        {
            return Array.IndexOf(HumanoidBones, bone);
        }

        /// <summary>Checks these tables against the native library (same order, names and parents).</summary>
        public static string VerifyAgainstNative()
        {
            for (int j = 0; j < NumJoints; j++)
            {
                string n = CoamdNative.FromUtf8(CoamdNative.coamd_joint_name(j));
                string h = CoamdNative.FromUtf8(CoamdNative.coamd_unity_humanoid_bone(j));
                int p = CoamdNative.coamd_joint_parent(j);
                if (n != JointNames[j] || h != HumanoidBones[j] || p != Parents[j])
                    return "joint " + j + ": native (" + n + ", " + h + ", " + p + ") vs managed (" + JointNames[j] +
                           ", " + HumanoidBones[j] + ", " + Parents[j] + ")";
            }
            return null;
        }
    }
}
