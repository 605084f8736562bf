// The Unity layer (the only part that needs UnityEngine): requests a motion from text and drives
// a Humanoid avatar with it. Everything else lives in Core/ and is engine-independent.
#if UNITY_5_3_OR_NEWER
using System;
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    [AddComponentMenu("CoAMD/Motion Stream Player")]
    [DisallowMultipleComponent]
    public class MotionStreamPlayer : MonoBehaviour
    {
        [Header("Server")]
        [Tooltip("host:port of `coamd serve` (loopback by default)")]
        public string serverAddress = "127.0.0.1:50051";
        public bool useTls;
        [Tooltip("PEM root certificates for TLS (empty = system roots)")]
        [TextArea] public string rootCertificates = "";
        [Tooltip("sent as 'authorization: Bearer <token>' when the server requires one")]
        public string bearerToken = "";

        [Header("Motion")]
        [TextArea] public string prompt = "a person walks forward happily";
        [Range(0.4f, 12f)] public float durationSeconds = 4f;
        public int seed;
        [Tooltip("Action-recognizer guidance: on = better match to the text, off = faster first frame")]
        public bool guidance = true;
        [Tooltip("Foot-contact cleanup on the server (feet stay planted); turn off if the character runs its own foot IK")]
        public bool footCleanup = true;
        [Tooltip("Seconds of motion buffered before playback starts (absorbs network jitter)")]
        [Range(0f, 2f)] public float bufferingDelay = 0.2f;
        public bool playOnStart = true;
        public bool loop;

        [Header("Avatar")]
        [Tooltip("A Humanoid Animator; its avatar must stand in its T-pose when this component starts")]
        public Animator animator;
        [Tooltip("Move this transform with the hips' travel; off plays the motion in place")]
        public bool rootMotion = true;

        public PlaybackState State { get; private set; } = PlaybackState.Finished;
        public string LastError { get; private set; } = "";

        MotionClient _client;
        MotionPlayerCore _core;
        readonly Transform[] _bones = new Transform[Skeleton.NumJoints];
        readonly Quaternion[] _restRotations = new Quaternion[Skeleton.NumJoints];

        void Start()
        {
            if (animator == null) animator = GetComponent<Animator>();
            if (animator == null || !animator.isHuman)
            {
                LastError = "MotionStreamPlayer needs a Humanoid Animator";
                Debug.LogError(LastError, this);
                enabled = false;
                return;
            }
            animator.enabled = false;  // this component poses the bones itself
            var rest = new float[CoamdNative.PositionFloats];
            Transform root = transform;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                var id = (HumanBodyBones)Enum.Parse(typeof(HumanBodyBones), Skeleton.HumanoidBones[j]);
                _bones[j] = animator.GetBoneTransform(id);
                if (_bones[j] == null)
                {
                    rest[3 * j] = float.NaN;
                    continue;
                }
                Vector3 p = root.InverseTransformPoint(_bones[j].position);
                rest[3 * j] = p.x; rest[3 * j + 1] = p.y; rest[3 * j + 2] = p.z;
                _restRotations[j] = Quaternion.Inverse(root.rotation) * _bones[j].rotation;
            }
            try
            {
                _client = new MotionClient(serverAddress, useTls, useTls ? rootCertificates : null,
                                           string.IsNullOrEmpty(bearerToken) ? null : bearerToken);
                _core = new MotionPlayerCore(_client, rest);
            }
            catch (CoamdException e)
            {
                LastError = e.Message;
                Debug.LogError("CoAMD: " + e.Message, this);
                enabled = false;
                return;
            }
            if (playOnStart) Request(prompt);
        }

        /// <summary>Requests a motion for text; it starts playing once buffered.</summary>
        public void Request(string text)
        {
            if (_core == null) return;
            prompt = text;
            var r = new MotionRequest
            {
                DurationSeconds = durationSeconds,
                Seed = (ulong)seed,
                Guidance = guidance ? Guidance.On : Guidance.Off,
                Cleanup = footCleanup ? Cleanup.On : Cleanup.Off,
                BufferingDelaySeconds = bufferingDelay,
                Coordinates = Coords.Unity,
            };
            try
            {
                _core.Play(text, r);
                LastError = "";
            }
            catch (CoamdException e)
            {
                LastError = e.Message;
                Debug.LogError("CoAMD: " + e.Message, this);
            }
        }

        void Update()
        {
            if (_core == null || _core.Stream == null) return;
            _core.RootMotion.Enabled = rootMotion;
            State = _core.Tick(Time.timeAsDouble);
            if (State == PlaybackState.Error)
            {
                LastError = _core.Stream.Error;
                Debug.LogError("CoAMD stream failed: " + LastError, this);
                _core.Stop();
                return;
            }
            if (!_core.Pose.HasFrame) return;
            float s = _core.Retarget.HipsScale;
            if (rootMotion)
                transform.position += transform.rotation * new Vector3(_core.RootMotion.DeltaX * s, 0f, _core.RootMotion.DeltaZ * s);
            float[] q = _core.AvatarRotations;
            Quaternion rootRot = transform.rotation;
            for (int j = 0; j < Skeleton.NumJoints; j++)
            {
                if (_bones[j] == null) continue;
                var g = new Quaternion(q[4 * j], q[4 * j + 1], q[4 * j + 2], q[4 * j + 3]);
                _bones[j].rotation = rootRot * (g * _restRotations[j]);
            }
            float[] p = _core.Pose.Positions;  // hips-centred: x = z = 0
            _bones[0].position = transform.TransformPoint(new Vector3(0f, p[1] * s, 0f));
            if (State == PlaybackState.Finished && loop) _core.Replay();
        }

        void OnDestroy()
        {
            if (_core != null) _core.Dispose();
            if (_client != null) _client.Dispose();
            _core = null;
            _client = null;
        }
    }
}
#endif
