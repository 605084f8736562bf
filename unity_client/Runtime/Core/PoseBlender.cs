using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>Transitions between motions by inertialization (offset blending): when a new motion
    /// takes over, the difference between the last pose shown and the new motion's first pose is
    /// kept as an offset (per joint local rotation, plus the hips position) and decays to zero over
    /// BlendSeconds along a smooth curve, added to the new motion as it plays. The character never
    /// pops and the new motion plays from its first frame at once (no frozen pose, no waiting for
    /// a crossfade partner). Works on root-relative poses (after RootMotion). Allocates nothing.</summary>
    public sealed class PoseBlender
    {
        const int Rot = CoamdNative.RotationFloats;
        readonly float[] _fromLocal = new float[Rot];
        readonly float[] _fromHips = new float[3];
        readonly float[] _offset = new float[Rot];
        readonly float[] _offsetHips = new float[3];
        readonly float[] _identity = { 0f, 0f, 0f, 1f };
        readonly float[] _tmp = new float[4];
        bool _captured, _active;
        double _elapsed;

        /// <summary>Length of a transition in seconds (0: cut).</summary>
        public float BlendSeconds = 0.3f;
        /// <summary>Whether an offset is decaying.</summary>
        public bool Active => _active || _captured;
        /// <summary>The current weight of the old pose's offset (1 at the switch, 0 when done).</summary>
        public float Weight { get; private set; }

        /// <summary>Remembers the pose shown last (root-relative local rotations, 84 floats, and hips
        /// position, 3 floats); the next Apply() blends from it.</summary>
        public void Capture(float[] localRotations84, float[] hips3)
        {
            Array.Copy(localRotations84, _fromLocal, Rot);
            Array.Copy(hips3, _fromHips, 3);
            _captured = BlendSeconds > 0f;
            _active = false;
        }

        public void Cancel()
        {
            _captured = _active = false;
            Weight = 0f;
        }

        /// <summary>Adds the decaying offset to the new motion's pose in place; dt is the engine time
        /// since the previous Apply() (seconds, 0 on the switch).</summary>
        public void Apply(float[] localRotations84, float[] hips3, double dt)
        {
            if (_captured)
            {
                // offset_j = from_j * to_j^-1: what turns the new pose into the old one.
                for (int j = 0; j < Skeleton.NumJoints; j++)
                {
                    int i = 4 * j;
                    _tmp[0] = -localRotations84[i]; _tmp[1] = -localRotations84[i + 1];
                    _tmp[2] = -localRotations84[i + 2]; _tmp[3] = localRotations84[i + 3];
                    QuatMath.Mul(_fromLocal, i, _tmp, 0, _offset, i);
                }
                for (int k = 0; k < 3; k++) _offsetHips[k] = _fromHips[k] - hips3[k];
                _captured = false;
                _active = true;
                _elapsed = 0.0;
                dt = 0.0;
            }
            if (!_active)
            {
                Weight = 0f;
                return;
            }
            _elapsed += Math.Max(0.0, dt);
            double x = BlendSeconds > 0f ? _elapsed / BlendSeconds : 1.0;
            if (x >= 1.0)
            {
                _active = false;
                Weight = 0f;
                return;
            }
            // 1 - smootherstep: the offset starts and ends with zero rate of change, so the pose is
            // continuous at the switch and the transition has no kink when it ends.
            float w = (float)(1.0 - x * x * x * (x * (6.0 * x - 15.0) + 10.0));
            Weight = w;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                int i = 4 * j;
                QuatMath.Slerp(_identity, 0, _offset, i, w, _tmp, 0);
                QuatMath.Mul(_tmp, 0, localRotations84, i, localRotations84, i);
            }
            for (int k = 0; k < 3; k++) hips3[k] += w * _offsetHips[k];
        }
    }
}
