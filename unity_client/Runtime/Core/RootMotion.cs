namespace CoAMD
{
    /// <summary>Splits the hips' horizontal travel off a pose (Y-up frames: x and z).
    ///
    /// Process() moves the pose so the hips sit above the local origin (x = z = 0, height kept) and
    /// reports how far the hips travelled horizontally since the previous call. With root motion on
    /// the engine moves the character's transform by that delta; with it off the character plays in
    /// place and the delta is zero. Reset() before a new motion or a replay.</summary>
    public sealed class RootMotion
    {
        bool _has;
        float _lastX, _lastZ;

        public bool Enabled = true;
        /// <summary>Horizontal hips travel since the previous Process() (0 when disabled).</summary>
        public float DeltaX { get; private set; }
        public float DeltaZ { get; private set; }

        public void Reset()
        {
            _has = false;
            DeltaX = DeltaZ = 0f;
        }

        public void Process(float[] positions63)
        {
            float hx = positions63[0], hz = positions63[2];
            DeltaX = DeltaZ = 0f;
            if (_has && Enabled)
            {
                DeltaX = hx - _lastX;
                DeltaZ = hz - _lastZ;
            }
            _has = true;
            _lastX = hx;
            _lastZ = hz;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                positions63[3 * j] -= hx;
                positions63[3 * j + 2] -= hz;
            }
        }
    }
}
