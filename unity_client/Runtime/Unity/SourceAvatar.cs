// The motion skeleton as a hidden Humanoid in the scene: the source of Unity's muscle-space
// retargeting (HumanPoseHandler). Built from SourceSkeleton (engine-independent, tested): bones
// named after the joints, standing in the skeleton's upright reference pose.
#if UNITY_5_3_OR_NEWER
using System;
using UnityEngine;

namespace CoAMD.Unity
{
    public sealed class SourceAvatar : IDisposable
    {
        public readonly SourceSkeleton Skeleton;
        public readonly GameObject Root;
        public readonly Transform[] Bones = new Transform[CoAMD.Skeleton.NumJoints];
        public readonly Avatar Avatar;
        public readonly HumanPoseHandler Handler;

        /// <summary>Builds the hierarchy (hidden, not saved) and its Humanoid avatar.</summary>
        /// <exception cref="InvalidOperationException">Unity could not make a valid Humanoid of it.</exception>
        public SourceAvatar(SourceSkeleton skeleton)
        {
            Skeleton = skeleton ?? throw new ArgumentNullException(nameof(skeleton));
            Root = new GameObject(SourceSkeleton.RootName);
            Root.hideFlags = HideFlags.HideAndDontSave;
            var description = new HumanDescription
            {
                human = new HumanBone[CoAMD.Skeleton.NumJoints],
                skeleton = new SkeletonBone[CoAMD.Skeleton.NumJoints + 1],
                upperArmTwist = 0.5f,
                lowerArmTwist = 0.5f,
                upperLegTwist = 0.5f,
                lowerLegTwist = 0.5f,
                armStretch = 0.05f,
                legStretch = 0.05f,
                feetSpacing = 0f,
                hasTranslationDoF = false,
            };
            description.skeleton[0] = new SkeletonBone
            {
                name = Root.name, position = Vector3.zero, rotation = Quaternion.identity, scale = Vector3.one,
            };
            for (int j = 0; j < CoAMD.Skeleton.NumJoints; j++)
            {
                var bone = new GameObject(CoAMD.Skeleton.JointNames[j]);
                bone.hideFlags = HideFlags.HideAndDontSave;
                int parent = CoAMD.Skeleton.Parents[j];
                bone.transform.SetParent(parent < 0 ? Root.transform : Bones[parent], false);
                float x, y, z, w;
                skeleton.LocalPosition(j, out x, out y, out z);
                bone.transform.localPosition = new Vector3(x, y, z);
                skeleton.LocalRotation(j, out x, out y, out z, out w);
                bone.transform.localRotation = new Quaternion(x, y, z, w);
                Bones[j] = bone.transform;
                description.skeleton[j + 1] = new SkeletonBone
                {
                    name = bone.name, position = bone.transform.localPosition,
                    rotation = bone.transform.localRotation, scale = Vector3.one,
                };
                var id = (HumanBodyBones)Enum.Parse(typeof(HumanBodyBones), CoAMD.Skeleton.HumanoidBones[j]);
                description.human[j] = new HumanBone
                {
                    boneName = bone.name, humanName = HumanTrait.BoneName[(int)id], limit = new HumanLimit { useDefaultValues = true },
                };
            }
            Avatar = AvatarBuilder.BuildHumanAvatar(Root, description);
            if (Avatar == null || !Avatar.isValid || !Avatar.isHuman)
            {
                UnityEngine.Object.DestroyImmediate(Root);
                throw new InvalidOperationException("Unity could not build a Humanoid avatar from the motion skeleton");
            }
            Avatar.hideFlags = HideFlags.HideAndDontSave;
            Handler = new HumanPoseHandler(Avatar, Root.transform);
        }

        /// <summary>Poses the hierarchy: hips at (x, y, z) below the root, local rotations (84 floats,
        /// relative to the rest offsets as the stream gives them) on every joint. The T-pose's local
        /// rotation of a joint is the reference pose's; the stream's rotations are on the same rest
        /// offsets, so they go in directly.</summary>
        public void SetPose(float hipsX, float hipsY, float hipsZ, float[] localRotations84)
        {
            Bones[0].localPosition = new Vector3(hipsX, hipsY, hipsZ);
            for (int j = 0; j < CoAMD.Skeleton.NumJoints; j++)
            {
                int i = 4 * j;
                Bones[j].localRotation = new Quaternion(localRotations84[i], localRotations84[i + 1],
                                                        localRotations84[i + 2], localRotations84[i + 3]);
            }
        }

        public void Dispose()
        {
            Handler.Dispose();
            if (Application.isPlaying) UnityEngine.Object.Destroy(Root);
            else UnityEngine.Object.DestroyImmediate(Root);
            if (Application.isPlaying) UnityEngine.Object.Destroy(Avatar);
            else UnityEngine.Object.DestroyImmediate(Avatar);
        }
    }
}
#endif
