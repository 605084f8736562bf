// What MotionStreamPlayer (one-shot prompts) and MotionSessionPlayer (an endless session steered by
// new instructions) share: the server settings and the background connection (AsyncConnection), the
// avatar and root motion settings, the core (MotionCoreBase) ticked every Update, and driving the
// Humanoid avatar through HumanoidDriver. A player adds what it asks the server for and how.
//
// Frame order: Update samples the motion (before the Animator), OnAnimatorMove moves the character
// by the root motion (through a CharacterController or Rigidbody when there is one), LateUpdate
// writes the pose over what the Animator produced, with a weight and per-body-part mask, so the
// Animator (layers, Timeline, its IK) keeps running and scripts that run after it (IK, look-at,
// Animation Rigging constraints applied in LateUpdate) still see and adjust the pose.
//
// The Unity messages (Awake, OnEnable, Update, OnAnimatorMove, LateUpdate, OnDisable) are this
// class's: a player must not declare them again (Unity would call only the player's).
#if UNITY_5_3_OR_NEWER
using System;
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    /// <summary>The base of MotionStreamPlayer and MotionSessionPlayer: connection, avatar, root
    /// motion and playback every frame. Not a component of its own.</summary>
    public abstract class MotionPlayerBase : MonoBehaviour
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

        [Header("Avatar")]
        public RetargetMode retargetMode = RetargetMode.MuscleSpace;
        [Tooltip("How much of the streamed pose replaces the Animator's (0 = the Animator's pose only)")]
        [Range(0f, 1f)] public float weight = 1f;
        [Tooltip("The body parts the streamed motion drives; the others keep the Animator's pose")]
        public BodyParts bodyParts = BodyParts.All;

        [Header("Root motion")]
        [Tooltip("Move the character with the motion's travel and turns; off plays it in place")]
        public bool rootMotion = true;
        [Tooltip("Time constant (s) of the character following the hips: removes the walk's sway")]
        [Range(0f, 1f)] public float positionSmoothing = 0.2f;
        [Tooltip("Time constant (s) of the heading following the pelvis's facing")]
        [Range(0f, 1f)] public float headingSmoothing = 0.2f;

        /// <summary>The connection: Connecting, Connected, Failed (LastError says why) or Disposed.</summary>
        public ConnectionStatus Connection => _connection != null ? _connection.Status : ConnectionStatus.Disposed;
        public PlaybackState State { get; private protected set; } = PlaybackState.Finished;
        public string LastError { get; private protected set; } = "";
        /// <summary>Raised on the main thread when Connection changes.</summary>
        public event Action<ConnectionStatus> ConnectionChanged;

        Animator _animator;
        AsyncConnection _connection;
        ConnectionStatus _reported = ConnectionStatus.Disposed;
        // The avatar's rest pose (captured in Awake, before the Animator moves it) and the retargeting.
        HumanoidDriver _driver;
        string _queued;

        /// <summary>The player's core (null until connected).</summary>
        private protected MotionCoreBase Core { get; private set; }

        // What a player adds (internal: only this package's players derive from this class).
        /// <summary>Seconds over which a new motion takes over from the pose on screen.</summary>
        internal abstract float BlendSeconds { get; }
        /// <summary>The player's core on a new connection.</summary>
        internal abstract MotionCoreBase CreateCore(MotionClient client, float[] avatarRestPositions63);
        /// <summary>The text sent once connected when none was queued (null or "": none).</summary>
        internal abstract string TextOnConnect { get; }
        /// <summary>Sends text to the core (Core is set).</summary>
        internal abstract void Send(string text);
        /// <summary>Update's step once the settings are on the core: Tick it and set State.</summary>
        internal abstract void TickCore(double engineTimeSeconds);

        void Awake()
        {
            _animator = GetComponent<Animator>();
            if (_animator == null || !_animator.isHuman)
            {
                Fail(GetType().Name + " needs a Humanoid Animator on the same GameObject");
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

        /// <summary>While connecting, keeps text to send once connected (the last one wins) and
        /// returns true; once connected, false.</summary>
        private protected bool QueueUntilConnected(string text)
        {
            if (Core != null) return false;
            _queued = text;
            return true;
        }

        void Update()
        {
            PollConnection();
            if (Core == null) return;
            Core.Blender.BlendSeconds = BlendSeconds;
            Core.RootMotion.Enabled = rootMotion;
            Core.RootMotion.PositionSmoothingSeconds = positionSmoothing;
            Core.RootMotion.HeadingSmoothingSeconds = headingSmoothing;
            Core.SolveAvatarRotations = retargetMode == RetargetMode.DirectBones;
            TickCore(Time.timeAsDouble);
        }

        /// <summary>After a Tick: a new failure of the core goes to LastError and the console.</summary>
        private protected void ReportCoreError()
        {
            if (Core.LastError.Length > 0 && Core.LastError != LastError) Fail(Core.LastError);
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
                Core = CreateCore(_connection.Client, _driver.RestPositions);
                _driver.Attach(Core.Reference, bodyParts);
            }
            catch (Exception e)
            {
                Fail(e.Message);
                Teardown();
                return;
            }
            string text = _queued ?? TextOnConnect;
            _queued = null;
            if (!string.IsNullOrEmpty(text)) Send(text);
        }

        // Root motion: the Animator calls this instead of applying its own when it is present.
        void OnAnimatorMove()
        {
            if (_driver == null) return;
            bool ours = Core != null && Core.HasPose && rootMotion && weight > 0f;
            _driver.Move(ours, ours ? Core.RootMotion : null, ours ? Core.Retarget.HipsScale : 1f, weight);
        }

        void LateUpdate()
        {
            if (Core == null || !Core.HasPose || weight <= 0f) return;
            _driver.Apply(retargetMode, Core.Positions, Core.LocalRotations, Core.AvatarRotations,
                          Core.Retarget.HipsScale, weight, bodyParts);
        }

        private protected void Fail(string message)
        {
            LastError = message;
            Debug.LogError("CoAMD: " + message, this);
        }

        void Teardown()
        {
            if (Core != null) Core.Dispose();
            if (_driver != null) _driver.Detach();
            if (_connection != null) _connection.Dispose();
            Core = null;
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
