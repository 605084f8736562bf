// Drives a Humanoid avatar with a streamed pose: shared by MotionStreamPlayer and
// MotionSessionPlayer. Captures the avatar's rest pose (before the Animator moves it), moves the
// character by RootMotion's deltas (through a CharacterController or Rigidbody when there is one)
// and writes the pose over the Animator's, in muscle space or bone by bone, with a weight and a
// per-body-part mask.
#if UNITY_5_3_OR_NEWER
using System;
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    internal sealed class HumanoidDriver : IDisposable
    {
        readonly Animator _animator;
        readonly Transform _transform;
        readonly Transform[] _bones = new Transform[Skeleton.NumJoints];
        readonly Quaternion[] _restRotations = new Quaternion[Skeleton.NumJoints];
        SourceAvatar _source;
        HumanPoseHandler _target;
        HumanPose _sourcePose, _targetPose;
        bool[] _muscleOn;

        /// <summary>The avatar's rest joint positions in its root's frame (NaN x for a missing bone):
        /// what HumanoidRetarget maps the motion onto.</summary>
        public readonly float[] RestPositions = new float[CoamdNative.PositionFloats];

        /// <summary>Captures the rest pose: call in Awake, before the Animator has moved the bones.</summary>
        public HumanoidDriver(Animator animator)
        {
            _animator = animator;
            _transform = animator.transform;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                var id = (HumanBodyBones)Enum.Parse(typeof(HumanBodyBones), Skeleton.HumanoidBones[j]);
                _bones[j] = _animator.GetBoneTransform(id);
                if (_bones[j] == null)
                {
                    RestPositions[3 * j] = float.NaN;
                    continue;
                }
                Vector3 p = _transform.InverseTransformPoint(_bones[j].position);
                RestPositions[3 * j] = p.x;
                RestPositions[3 * j + 1] = p.y;
                RestPositions[3 * j + 2] = p.z;
                _restRotations[j] = Quaternion.Inverse(_transform.rotation) * _bones[j].rotation;
            }
        }

        public bool Attached => _target != null;

        /// <summary>Builds the muscle-space source (the motion skeleton as a hidden Humanoid) once the
        /// server's skeleton is known. Throws when Unity cannot build it.</summary>
        public void Attach(ReferencePose reference, BodyParts parts)
        {
            Detach();
            _source = new SourceAvatar(new SourceSkeleton(reference));
            _target = new HumanPoseHandler(_animator.avatar, _transform);
            _muscleOn = MuscleMask(parts);
        }

        public void Detach()
        {
            if (_source != null) _source.Dispose();
            if (_target != null) _target.Dispose();
            _source = null;
            _target = null;
        }

        public void Dispose()
        {
            Detach();
        }

        /// <summary>OnAnimatorMove: ours = the stream drives the root (RootMotion's deltas in motion
        /// metres, scaled by hipsScale); otherwise the Animator's own root motion when it applies it.</summary>
        public void Move(bool ours, RootMotion rootMotion, float hipsScale, float weight)
        {
            Vector3 delta;
            Quaternion turn;
            if (ours)
            {
                float s = hipsScale * _transform.lossyScale.y;
                delta = _transform.rotation * new Vector3(rootMotion.DeltaX * s, 0f, rootMotion.DeltaZ * s);
                turn = Quaternion.AngleAxis(rootMotion.DeltaYaw * Mathf.Rad2Deg, Vector3.up);
                delta *= weight;
                turn = Quaternion.Slerp(Quaternion.identity, turn, weight);
            }
            else if (_animator.applyRootMotion)
            {
                delta = _animator.deltaPosition;
                turn = _animator.deltaRotation;
            }
            else
            {
                return;
            }
            var controller = _transform.GetComponent<CharacterController>();
            var body = _transform.GetComponent<Rigidbody>();
            if (controller != null && controller.enabled)
            {
                controller.Move(delta);
                _transform.rotation = turn * _transform.rotation;
            }
            else if (body != null && !body.isKinematic)
            {
                body.MovePosition(body.position + delta);
                body.MoveRotation(turn * body.rotation);
            }
            else
            {
                _transform.position += delta;
                _transform.rotation = turn * _transform.rotation;
            }
        }

        /// <summary>LateUpdate: writes the pose (relative to the root) over the Animator's.</summary>
        public void Apply(RetargetMode mode, float[] positions, float[] localRotations, float[] avatarRotations,
                          float hipsScale, float weight, BodyParts parts)
        {
            if (mode == RetargetMode.MuscleSpace) ApplyMuscles(positions, localRotations, weight, parts);
            else ApplyBones(positions, avatarRotations, hipsScale, weight, parts);
        }

        void ApplyMuscles(float[] p, float[] localRotations, float weight, BodyParts parts)
        {
            if (_source == null || _target == null) return;
            _source.SetPose(p[0], p[1], p[2], localRotations);
            _source.Handler.GetHumanPose(ref _sourcePose);
            _target.GetHumanPose(ref _targetPose);  // what the Animator produced this frame
            bool body = (parts & BodyParts.Body) != 0;
            float wb = body ? weight : 0f;
            _targetPose.bodyPosition = Vector3.Lerp(_targetPose.bodyPosition, _sourcePose.bodyPosition, wb);
            _targetPose.bodyRotation = Quaternion.Slerp(_targetPose.bodyRotation, _sourcePose.bodyRotation, wb);
            for (int i = 0; i < _targetPose.muscles.Length && i < _sourcePose.muscles.Length; i++)
                if (_muscleOn[i])
                    _targetPose.muscles[i] = Mathf.Lerp(_targetPose.muscles[i], _sourcePose.muscles[i], weight);
            _target.SetHumanPose(ref _targetPose);
        }

        void ApplyBones(float[] p, float[] q, float hipsScale, float weight, BodyParts parts)
        {
            Quaternion root = _transform.rotation;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                if (_bones[j] == null || (parts & PartOfJoint(j)) == 0) continue;
                var g = new Quaternion(q[4 * j], q[4 * j + 1], q[4 * j + 2], q[4 * j + 3]);
                _bones[j].rotation = Quaternion.Slerp(_bones[j].rotation, root * (g * _restRotations[j]), weight);
            }
            if ((parts & BodyParts.Body) != 0 && _bones[0] != null)
            {
                float s = hipsScale;
                Vector3 hips = _transform.TransformPoint(new Vector3(p[0] * s, p[1] * s, p[2] * s));
                _bones[0].position = Vector3.Lerp(_bones[0].position, hips, weight);
            }
        }

        static BodyParts PartOfJoint(int j)
        {
            if (j <= 2) return BodyParts.Body;
            if (j <= 4) return BodyParts.Head;
            if (j <= 8) return BodyParts.LeftArm;
            if (j <= 12) return BodyParts.RightArm;
            return j <= 16 ? BodyParts.LeftLeg : BodyParts.RightLeg;
        }

        static bool[] MuscleMask(BodyParts parts)
        {
            var on = new bool[HumanTrait.MuscleCount];
            for (int i = 0; i < on.Length; i++)
            {
                var bone = (HumanBodyBones)HumanTrait.BoneFromMuscle(i);
                on[i] = (parts & PartOfBone(bone)) != 0;
            }
            return on;
        }

        static BodyParts PartOfBone(HumanBodyBones b)
        {
            switch (b)
            {
                case HumanBodyBones.Neck: case HumanBodyBones.Head: case HumanBodyBones.LeftEye:
                case HumanBodyBones.RightEye: case HumanBodyBones.Jaw:
                    return BodyParts.Head;
                case HumanBodyBones.LeftShoulder: case HumanBodyBones.LeftUpperArm: case HumanBodyBones.LeftLowerArm:
                case HumanBodyBones.LeftHand:
                    return BodyParts.LeftArm;
                case HumanBodyBones.RightShoulder: case HumanBodyBones.RightUpperArm: case HumanBodyBones.RightLowerArm:
                case HumanBodyBones.RightHand:
                    return BodyParts.RightArm;
                case HumanBodyBones.LeftUpperLeg: case HumanBodyBones.LeftLowerLeg: case HumanBodyBones.LeftFoot:
                case HumanBodyBones.LeftToes:
                    return BodyParts.LeftLeg;
                case HumanBodyBones.RightUpperLeg: case HumanBodyBones.RightLowerLeg: case HumanBodyBones.RightFoot:
                case HumanBodyBones.RightToes:
                    return BodyParts.RightLeg;
                case HumanBodyBones.Hips: case HumanBodyBones.Spine: case HumanBodyBones.Chest:
                case HumanBodyBones.UpperChest:
                    return BodyParts.Body;
                default:
                    return BodyParts.None;  // fingers: the stream has none, the Animator keeps them
            }
        }
    }
}
#endif
