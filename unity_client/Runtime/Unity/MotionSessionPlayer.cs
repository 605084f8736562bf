// An endless streamed motion on a Humanoid avatar, steered by text while it plays: the character
// keeps moving and SetInstruction("a person waves the right hand") changes what it does from the
// next generated window on (a session on the server). The decisions live in Core/
// (MotionSessionCore, engine-independent and tested); driving the avatar is HumanoidDriver's,
// shared with MotionStreamPlayer. Frame order as MotionStreamPlayer: Update samples, OnAnimatorMove
// moves the character (CharacterController / Rigidbody when present), LateUpdate writes the pose.
#if UNITY_5_3_OR_NEWER
using System;
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    [AddComponentMenu("CoAMD/Motion Session Player")]
    [DisallowMultipleComponent]
    [RequireComponent(typeof(Animator))]
    [DefaultExecutionOrder(-50)]
    public class MotionSessionPlayer : MonoBehaviour
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

        [Header("Session")]
        [Tooltip("The first instruction, sent as soon as the server is connected (empty: wait for SetInstruction)")]
        [TextArea] public string instruction = "a person walks forward";
        public int seed;
        [Tooltip("Action-recognizer guidance: on = better match to the text, off = faster")]
        public bool guidance;
        [Tooltip("Foot-contact cleanup on the server (feet stay planted); turn off if the character runs its own foot IK")]
        public bool footCleanup = true;
        [Tooltip("Seconds the server keeps the stream ahead of real time (0 = server default, 1 s): larger absorbs jitter, smaller reacts sooner")]
        [Range(0f, 4f)] public float lookaheadSeconds;
        [Tooltip("Seconds of motion buffered before playback starts (absorbs network jitter)")]
        [Range(0f, 2f)] public float bufferingDelay = 0.2f;
        [Tooltip("Seconds over which a new session takes over from the pose on screen")]
        [Range(0f, 1f)] public float blendSeconds = 0.3f;

        [Header("Avatar")]
        public RetargetMode retargetMode = RetargetMode.MuscleSpace;
        [Range(0f, 1f)] public float weight = 1f;
        public BodyParts bodyParts = BodyParts.All;

        [Header("Root motion")]
        [Tooltip("Move the character with the motion's travel and turns; off plays it in place")]
        public bool rootMotion = true;
        [Tooltip("Ask the server for in-place frames (ROOT_MOTION_IN_PLACE) and move the character by their root velocity and heading instead of following the hips")]
        public bool serverRootMotion = true;
        [Range(0f, 1f)] public float positionSmoothing = 0.2f;
        [Range(0f, 1f)] public float headingSmoothing = 0.2f;

        public ConnectionStatus Connection => _connection != null ? _connection.Status : ConnectionStatus.Disposed;
        public PlaybackState State { get; private set; } = PlaybackState.Finished;
        public string LastError { get; private set; } = "";
        /// <summary>The instruction playing now (its number and text) and how the server understood the last one.</summary>
        public int CurrentInstruction => _core != null ? _core.CurrentInstruction : -1;
        public string CurrentText => _core != null ? _core.CurrentText : "";
        public Interpretation LastInterpretation => _core != null ? _core.LastInterpretation : null;
        public event Action<ConnectionStatus> ConnectionChanged;
        /// <summary>Every session event (main thread).</summary>
        public event Action<SessionEvent> EventReceived;
        /// <summary>Playback reached the first frame of an instruction (main thread).</summary>
        public event Action<SessionEvent> InstructionStarted;

        Animator _animator;
        AsyncConnection _connection;
        ConnectionStatus _reported = ConnectionStatus.Disposed;
        MotionSessionCore _core;
        HumanoidDriver _driver;
        string _queued;

        void Awake()
        {
            _animator = GetComponent<Animator>();
            if (_animator == null || !_animator.isHuman)
            {
                Fail("MotionSessionPlayer needs a Humanoid Animator on the same GameObject");
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

        /// <summary>Steers the motion to text: the next instruction of the running session (the
        /// motion keeps playing and changes from the next window on), or the opening text of a new
        /// session. While connecting it is queued.</summary>
        public void SetInstruction(string text)
        {
            if (string.IsNullOrEmpty(text)) return;
            instruction = text;
            if (_core == null)
            {
                _queued = text;
                return;
            }
            try
            {
                ApplySettings();
                _core.SetInstruction(text);
                LastError = "";
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
            }
        }

        /// <summary>Ends the session: the motion plays to its last frame and holds it.</summary>
        public void Close()
        {
            if (_core == null) return;
            try
            {
                _core.Close();
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
            }
        }

        void ApplySettings()
        {
            SessionOptions o = _core.Options;
            o.Seed = (ulong)seed;
            o.Guidance = guidance ? Guidance.On : Guidance.Off;
            o.Cleanup = footCleanup ? Cleanup.On : Cleanup.Off;
            o.LookaheadSeconds = lookaheadSeconds;
            o.BufferingDelaySeconds = bufferingDelay;
            o.Coordinates = Coords.Unity;
            o.ServerRotations = retargetMode == RetargetMode.MuscleSpace;
            o.RootMotion = serverRootMotion ? RootMotionMode.InPlace : RootMotionMode.ServerDefault;
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
            try
            {
                State = _core.Tick(Time.timeAsDouble);
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
                return;
            }
            if (_core.LastError.Length > 0 && _core.LastError != LastError) Fail(_core.LastError);
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
                _core = new MotionSessionCore(_connection.Client, _driver.RestPositions, new SessionOptions());
                _core.EventReceived += e => EventReceived?.Invoke(e);
                _core.InstructionStarted += e => InstructionStarted?.Invoke(e);
                _driver.Attach(_core.Reference, bodyParts);
            }
            catch (Exception e)
            {
                Fail(e.Message);
                Teardown();
                return;
            }
            string text = _queued ?? instruction;
            _queued = null;
            if (!string.IsNullOrEmpty(text)) SetInstruction(text);
        }

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
