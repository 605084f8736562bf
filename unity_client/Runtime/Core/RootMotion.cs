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
    ///
    /// Frames streamed with RootMotionMode.InPlace hold no travel: ProcessInPlace() takes it from
    /// the server's per-frame root velocity (integrated over the motion time played) and heading
    /// instead of the hips, with the same outputs. Allocates nothing.</summary>
    public sealed class RootMotion
    {
        const int UpperLegL = 13, UpperLegR = 17;
        readonly float[] _yawInv = new float[4];
        bool _has;
        double _lastTime, _lastMotionTime;
        bool _inPlace;

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
            _inPlace = false;
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
            _inPlace = false;
            ToRootFrame(positions63, localRotations84, worldRotations84, RootX, RootZ);
        }

        /// <summary>Advances the root of an in-place stream (RootMotionMode.InPlace) for this pose:
        /// the travel is the server's root velocity (vx, vz in the pose's frame and units per second,
        /// Pose.Info.RootVelocityX / Z) times the motion time played since the last call, the heading
        /// follows the server's heading (Pose.Info.Heading, Unity yaw) through HeadingSmoothingSeconds.
        /// Rewrites the pose relative to the root like Process(). RootX / RootZ accumulate the travel.</summary>
        public void ProcessInPlace(double engineTimeSeconds, double motionTimeSeconds, float rootVelocityX,
                                   float rootVelocityZ, float heading, float[] positions63, float[] localRotations84,
                                   float[] worldRotations84)
        {
            DeltaX = DeltaZ = DeltaYaw = 0f;
            if (!_has || !_inPlace)
            {
                _has = true;
                RootX = RootZ = 0f;
                RootYaw = heading;
            }
            else if (Enabled)
            {
                double dt = Math.Max(0.0, engineTimeSeconds - _lastTime);
                // Travel only while the motion advances (not while buffering or after a replay's jump back).
                double dm = motionTimeSeconds - _lastMotionTime;
                if (dm < 0.0 || dm > 1.0) dm = 0.0;
                float ay = Follow(dt, HeadingSmoothingSeconds);
                float oldYaw = RootYaw;
                float dx = (float)(rootVelocityX * dm), dz = (float)(rootVelocityZ * dm);
                RootX += dx;
                RootZ += dz;
                RootYaw = oldYaw + ay * QuatMath.WrapAngle(heading - oldYaw);
                float c = (float)Math.Cos(oldYaw), s = (float)Math.Sin(oldYaw);
                DeltaX = c * dx - s * dz;
                DeltaZ = s * dx + c * dz;
                DeltaYaw = RootYaw - oldYaw;
            }
            _inPlace = true;
            _lastTime = engineTimeSeconds;
            _lastMotionTime = motionTimeSeconds;
            // The pose has no travel: only the hips' own offset from the floor origin stays.
            ToRootFrame(positions63, localRotations84, worldRotations84, 0f, 0f);
        }

        void ToRootFrame(float[] positions63, float[] local84, float[] world84, float originX, float originZ)
        {
            float c = (float)Math.Cos(RootYaw), s = (float)Math.Sin(RootYaw);
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                float x = positions63[3 * j] - originX, z = positions63[3 * j + 2] - originZ;
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
