using System;

namespace CoAMD
{
    /// <summary>Splits a character's root motion (travel on the floor and heading) off a streamed pose
    /// (Unity frame: Y up, left at -X, a motion starts facing +Z).
    ///
    /// The root follows the hips' projection on the floor and the heading follows the pelvis's facing
    /// (perpendicular to the line between the hip joints), each through a critically damped
    /// first-order filter with its own time constant: the hips' side-to-side sway and the pelvis's
    /// swing while walking stay in the pose instead of shaking the whole character, while turns and
    /// travel move it. Process() reports this tick's root displacement in the previous root frame
    /// (x to the character's right, z forward) and its change of heading, and rewrites the pose
    /// relative to the new root (positions and rotations turned by minus the heading, positions
    /// moved by minus the root), so an engine that moves its character by the deltas shows the
    /// body exactly where the motion puts it. Disabled (in place): the root stays under the hips
    /// and keeps its first heading, the deltas are zero. Reset() before a new motion or a replay.
    /// Allocates nothing.</summary>
    public sealed class RootMotion
    {
        const int UpperLegL = 13, UpperLegR = 17;
        readonly float[] _yawInv = new float[4];
        bool _has;
        double _lastTime;

        /// <summary>On: the character travels and turns with the motion; off: the motion plays in place.</summary>
        public bool Enabled = true;
        /// <summary>Time constant (seconds) of the root following the hips on the floor; 0 = exactly under them.</summary>
        public float PositionSmoothingSeconds = 0.2f;
        /// <summary>Time constant (seconds) of the heading following the pelvis's facing; 0 = exactly.</summary>
        public float HeadingSmoothingSeconds = 0.2f;

        /// <summary>Root displacement of the last Process() in the previous root frame (metres of the
        /// motion: x right, z forward).</summary>
        public float DeltaX { get; private set; }
        public float DeltaZ { get; private set; }
        /// <summary>Change of heading of the last Process() (radians, positive turns +Z towards +X:
        /// Unity's yaw).</summary>
        public float DeltaYaw { get; private set; }
        /// <summary>The root in motion space (metres) and its heading (radians).</summary>
        public float RootX { get; private set; }
        public float RootZ { get; private set; }
        public float RootYaw { get; private set; }

        public void Reset()
        {
            _has = false;
            DeltaX = DeltaZ = DeltaYaw = 0f;
        }

        /// <summary>The pelvis's facing (radians, Unity yaw) in a pose: perpendicular to the line from
        /// the right hip joint to the left one.</summary>
        public static float Facing(float[] positions63)
        {
            float vx = positions63[3 * UpperLegL] - positions63[3 * UpperLegR];
            float vz = positions63[3 * UpperLegL + 2] - positions63[3 * UpperLegR + 2];
            // forward = up x (left - right) = (vz, 0, -vx)
            return (float)Math.Atan2(vz, -vx);
        }

        /// <summary>Advances the root to engine time t (seconds) for this pose and rewrites the pose
        /// relative to it: positions63 (required), localRotations84 (only the hips' changes) and
        /// worldRotations84 (all) when not null.</summary>
        public void Process(double engineTimeSeconds, float[] positions63, float[] localRotations84, float[] worldRotations84)
        {
            float hx = positions63[0], hz = positions63[2];
            float facing = Facing(positions63);
            DeltaX = DeltaZ = DeltaYaw = 0f;
            if (!_has)
            {
                _has = true;
                RootX = hx;
                RootZ = hz;
                RootYaw = facing;
            }
            else if (!Enabled)
            {
                RootX = hx;
                RootZ = hz;
            }
            else
            {
                double dt = Math.Max(0.0, engineTimeSeconds - _lastTime);
                float ap = Follow(dt, PositionSmoothingSeconds), ay = Follow(dt, HeadingSmoothingSeconds);
                float oldX = RootX, oldZ = RootZ, oldYaw = RootYaw;
                RootX += ap * (hx - RootX);
                RootZ += ap * (hz - RootZ);
                RootYaw = oldYaw + ay * QuatMath.WrapAngle(facing - oldYaw);
                // The displacement in the previous root frame: turned by minus the old heading.
                float dx = RootX - oldX, dz = RootZ - oldZ;
                float c = (float)Math.Cos(oldYaw), s = (float)Math.Sin(oldYaw);
                DeltaX = c * dx - s * dz;
                DeltaZ = s * dx + c * dz;
                DeltaYaw = RootYaw - oldYaw;
            }
            _lastTime = engineTimeSeconds;
            ToRootFrame(positions63, localRotations84, worldRotations84);
        }

        void ToRootFrame(float[] positions63, float[] local84, float[] world84)
        {
            float c = (float)Math.Cos(RootYaw), s = (float)Math.Sin(RootYaw);
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                float x = positions63[3 * j] - RootX, z = positions63[3 * j + 2] - RootZ;
                positions63[3 * j] = c * x - s * z;
                positions63[3 * j + 2] = s * x + c * z;
            }
            QuatMath.Yaw(-RootYaw, _yawInv, 0);
            if (local84 != null) QuatMath.Mul(_yawInv, 0, local84, 0, local84, 0);
            if (world84 != null)
                for (int j = 0; j < Skeleton.NumJoints; j++) QuatMath.Mul(_yawInv, 0, world84, 4 * j, world84, 4 * j);
        }

        static float Follow(double dt, float timeConstant)
        {
            if (timeConstant <= 0f) return 1f;
            return (float)(1.0 - Math.Exp(-dt / timeConstant));
        }
    }
}
