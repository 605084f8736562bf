// The Unity layer (the only part that needs UnityEngine): requests motions from text and drives a
// Humanoid avatar with them. Everything it decides lives in Core/ (engine-independent, tested):
// connection (AsyncConnection), playback, blending and root motion (MotionPlayerCore), direct
// retargeting (HumanoidRetarget), the source skeleton (SourceSkeleton); driving the avatar is
// HumanoidDriver's (shared with MotionSessionPlayer).
//
// Frame order: Update samples the motion (before the Animator), OnAnimatorMove moves the character
// by the root motion (through a CharacterController or Rigidbody when there is one), LateUpdate
// writes the pose over what the Animator produced, with a weight and per-body-part mask, so the
// Animator (layers, Timeline, its IK) keeps running and scripts that run after it (IK, look-at,
// Animation Rigging constraints applied in LateUpdate) still see and adjust the pose.
#if UNITY_5_3_OR_NEWER
using System;
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    public enum RetargetMode
    {
        /// <summary>Unity's muscle-space transfer (HumanPoseHandler) from the motion skeleton's
        /// hidden Humanoid: respects the avatar's muscle limits, twist distribution and proportions.</summary>
        MuscleSpace = 0,
        /// <summary>Bone directions solved against the avatar's own rest pose (HumanoidRetarget).</summary>
        DirectBones = 1,
    }

    [Flags]
    public enum BodyParts
    {
        None = 0, Body = 1, Head = 2, LeftArm = 4, RightArm = 8, LeftLeg = 16, RightLeg = 32,
        All = Body | Head | LeftArm | RightArm | LeftLeg | RightLeg,
    }

    [AddComponentMenu("CoAMD/Motion Stream Player")]
    [DisallowMultipleComponent]
    [RequireComponent(typeof(Animator))]
    [DefaultExecutionOrder(-50)]
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
        [Tooltip("Seconds to wait for the server; the connection is made in the background either way")]
        public float connectTimeoutSeconds = 5f;

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
        [Tooltip("Request the prompt as soon as the server is connected")]
        public bool playOnConnect = true;
        public bool loop;
        [Tooltip("Seconds over which a new motion (new prompt, replay) takes over from the pose on screen")]
        [Range(0f, 1f)] public float blendSeconds = 0.3f;

        [Header("Avatar")]
        public RetargetMode retargetMode = RetargetMode.MuscleSpace;
        [Tooltip("How much of the streamed pose replaces the Animator's (0 = the Animator's pose only)")]
        [Range(0f, 1f)] public float weight = 1f;
        [Tooltip("The body parts the streamed motion drives; the others keep the Animator's pose")]
        public BodyParts bodyParts = BodyParts.All;

        [Header("Root motion")]
        [Tooltip("Move the character with the motion's travel and turns; off plays it in place")]
        public bool rootMotion = true;
        [Tooltip("Ask the server for in-place frames (ROOT_MOTION_IN_PLACE) and move the character by their root velocity and heading instead of following the hips")]
        public bool serverRootMotion;
        [Tooltip("Time constant (s) of the character following the hips: removes the walk's sway")]
        [Range(0f, 1f)] public float positionSmoothing = 0.2f;
        [Tooltip("Time constant (s) of the heading following the pelvis's facing")]
        [Range(0f, 1f)] public float headingSmoothing = 0.2f;

        /// <summary>The connection: Connecting, Connected, Failed (LastError says why) or Disposed.</summary>
        public ConnectionStatus Connection => _connection != null ? _connection.Status : ConnectionStatus.Disposed;
        public PlaybackState State { get; private set; } = PlaybackState.Finished;
        public string LastError { get; private set; } = "";
        /// <summary>Raised on the main thread when Connection changes.</summary>
        public event Action<ConnectionStatus> ConnectionChanged;

        Animator _animator;
        AsyncConnection _connection;
        ConnectionStatus _reported = ConnectionStatus.Disposed;
        MotionPlayerCore _core;
        // The avatar's rest pose (captured in Awake, before the Animator moves it) and the retargeting.
        HumanoidDriver _driver;
        string _queued;
        PlaybackState _lastState = PlaybackState.Finished;

        void Awake()
        {
            _animator = GetComponent<Animator>();
            if (_animator == null || !_animator.isHuman)
            {
                Fail("MotionStreamPlayer needs a Humanoid Animator on the same GameObject");
                enabled = false;
                return;
            }
            _driver = new HumanoidDriver(_animator);
        }

        void OnEnable()
        {
            CoamdUnityLog.Install();
            if (_connection == null || _connection.Status == ConnectionStatus.Failed ||
                _connection.Status == ConnectionStatus.Disposed)
                Connect();
        }

        /// <summary>(Re)connects in the background with the current settings.</summary>
        public void Connect()
        {
            Teardown();
            LastError = "";
            try
            {
                _connection = new AsyncConnection(serverAddress, useTls, useTls ? rootCertificates : null,
                                                  string.IsNullOrEmpty(bearerToken) ? null : bearerToken,
                                                  connectTimeoutSeconds);
            }
            catch (ArgumentException e)
            {
                Fail(e.Message);
            }
        }

        /// <summary>Requests a motion for text. While connecting it is queued; while another motion
        /// plays, that one continues until the new one is buffered, then blends into it.</summary>
        public void Request(string text)
        {
            prompt = text;
            if (_core == null)
            {
                _queued = text;
                return;
            }
            var r = new MotionRequest
            {
                DurationSeconds = durationSeconds,
                Seed = (ulong)seed,
                Guidance = guidance ? Guidance.On : Guidance.Off,
                Cleanup = footCleanup ? Cleanup.On : Cleanup.Off,
                BufferingDelaySeconds = bufferingDelay,
                Coordinates = Coords.Unity,
                // Muscle space needs real twists: the server's rotations (elbow and knee hinges).
                ServerRotations = retargetMode == RetargetMode.MuscleSpace,
                RootMotion = serverRootMotion ? RootMotionMode.InPlace : RootMotionMode.ServerDefault,
            };
            try
            {
                _core.Play(text, r);
                LastError = "";
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
            }
        }

        void Update()
        {
            PollConnection();
            if (_core == null) return;
            _core.Blender.BlendSeconds = blendSeconds;
            _core.RootMotion.Enabled = rootMotion;
            _core.RootMotion.PositionSmoothingSeconds = positionSmoothing;
            _core.RootMotion.HeadingSmoothingSeconds = headingSmoothing;
            _core.SolveAvatarRotations = retargetMode == RetargetMode.DirectBones;
            State = _core.Tick(Time.timeAsDouble);
            if (_core.LastError.Length > 0 && _core.LastError != LastError) Fail(_core.LastError);
            if (State == PlaybackState.Finished && _lastState != PlaybackState.Finished && loop) _core.Replay();
            _lastState = State;
        }

        void PollConnection()
        {
            if (_connection == null) return;
            ConnectionStatus status = _connection.Status;
            if (status == _reported) return;
            _reported = status;
            if (status == ConnectionStatus.Connected) OnConnected();
            else if (status == ConnectionStatus.Failed) Fail(_connection.Error);
            ConnectionChanged?.Invoke(status);
        }

        void OnConnected()
        {
            try
            {
                _core = new MotionPlayerCore(_connection.Client, _driver.RestPositions);
                _driver.Attach(_core.Reference, bodyParts);
            }
            catch (Exception e)
            {
                Fail(e.Message);
                Teardown();
                return;
            }
            string text = _queued ?? (playOnConnect ? prompt : null);
            _queued = null;
            if (!string.IsNullOrEmpty(text)) Request(text);
        }

        // Root motion: the Animator calls this instead of applying its own when it is present.
        void OnAnimatorMove()
        {
            if (_driver == null) return;
            bool ours = _core != null && _core.HasPose && rootMotion && weight > 0f;
            _driver.Move(ours, ours ? _core.RootMotion : null, ours ? _core.Retarget.HipsScale : 1f, weight);
        }

        void LateUpdate()
        {
            if (_core == null || !_core.HasPose || weight <= 0f) return;
            _driver.Apply(retargetMode, _core.Positions, _core.LocalRotations, _core.AvatarRotations,
                          _core.Retarget.HipsScale, weight, bodyParts);
        }

        void Fail(string message)
        {
            LastError = message;
            Debug.LogError("CoAMD: " + message, this);
        }

        void Teardown()
        {
            if (_core != null) _core.Dispose();
            if (_driver != null) _driver.Detach();
            if (_connection != null) _connection.Dispose();
            _core = null;
            _connection = null;
            _reported = ConnectionStatus.Disposed;
        }

        void OnDisable()
        {
            Teardown();
        }
    }
}
#endif
