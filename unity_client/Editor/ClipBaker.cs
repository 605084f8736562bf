// Turns a BakedMotion (engine-independent, tested) into an AnimationClip asset.
using System;
using CoAMD.Unity;
using UnityEditor;
using UnityEngine;

namespace CoAMD.Editor
{
    public enum ClipKind
    {
        /// <summary>Muscle curves (RootT, RootQ and every muscle): plays on any Humanoid.</summary>
        Humanoid,
        /// <summary>Transform curves on the motion skeleton's hierarchy (SourceSkeleton paths).</summary>
        Generic,
    }

    public static class ClipBaker
    {
        /// <summary>A new clip of the motion at its 20 fps, root motion included.</summary>
        public static AnimationClip Bake(BakedMotion motion, SourceSkeleton skeleton, ClipKind kind)
        {
            if (motion == null) throw new ArgumentNullException(nameof(motion));
            if (skeleton == null) throw new ArgumentNullException(nameof(skeleton));
            var clip = new AnimationClip { frameRate = motion.Fps };
            if (kind == ClipKind.Humanoid) BakeHumanoid(motion, skeleton, clip);
            else BakeGeneric(motion, skeleton, clip);
            return clip;
        }

        static void BakeGeneric(BakedMotion motion, SourceSkeleton skeleton, AnimationClip clip)
        {
            string[] rot = { "localRotation.x", "localRotation.y", "localRotation.z", "localRotation.w" };
            string[] pos = { "localPosition.x", "localPosition.y", "localPosition.z" };
            for (int j = 0; j < Skeleton.NumJoints; j++)
                for (int k = 0; k < 4; k++)
                    clip.SetCurve(skeleton.Paths[j], typeof(Transform), rot[k], Curve(motion, motion.RotationCurve(j, k)));
            for (int k = 0; k < 3; k++)
                clip.SetCurve(skeleton.Paths[0], typeof(Transform), pos[k], Curve(motion, motion.PositionCurve(0, k)));
            clip.EnsureQuaternionContinuity();
        }

        static void BakeHumanoid(BakedMotion motion, SourceSkeleton skeleton, AnimationClip clip)
        {
            int muscles = HumanTrait.MuscleCount;
            var values = new float[7 + muscles][];
            for (int c = 0; c < values.Length; c++) values[c] = new float[motion.FrameCount];
            var pose = new HumanPose();
            var local = new float[Native.CoamdNative.RotationFloats];
            using (var source = new SourceAvatar(skeleton))
            {
                for (int i = 0; i < motion.FrameCount; i++)
                {
                    Array.Copy(motion.LocalRotations, i * local.Length, local, 0, local.Length);
                    int h = i * Native.CoamdNative.PositionFloats;
                    source.SetPose(motion.Positions[h], motion.Positions[h + 1], motion.Positions[h + 2], local);
                    source.Handler.GetHumanPose(ref pose);
                    values[0][i] = pose.bodyPosition.x;
                    values[1][i] = pose.bodyPosition.y;
                    values[2][i] = pose.bodyPosition.z;
                    values[3][i] = pose.bodyRotation.x;
                    values[4][i] = pose.bodyRotation.y;
                    values[5][i] = pose.bodyRotation.z;
                    values[6][i] = pose.bodyRotation.w;
                    for (int m = 0; m < muscles; m++) values[7 + m][i] = pose.muscles[m];
                }
            }
            string[] root = { "RootT.x", "RootT.y", "RootT.z", "RootQ.x", "RootQ.y", "RootQ.z", "RootQ.w" };
            for (int c = 0; c < values.Length; c++)
            {
                string name = c < 7 ? root[c] : HumanTrait.MuscleName[c - 7];
                AnimationUtility.SetEditorCurve(clip, EditorCurveBinding.FloatCurve("", typeof(Animator), name),
                                                Curve(motion, values[c]));
            }
        }

        static AnimationCurve Curve(BakedMotion motion, float[] values)
        {
            var keys = new Keyframe[values.Length];
            for (int i = 0; i < values.Length; i++) keys[i] = new Keyframe(i / motion.Fps, values[i]);
            return new AnimationCurve(keys);
        }
    }
}
