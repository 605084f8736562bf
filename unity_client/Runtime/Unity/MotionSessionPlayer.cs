// An endless streamed motion on a Humanoid avatar, steered by text while it plays: the character
// keeps moving and SetInstruction("a person waves the right hand") changes what it does from the
// next generated window on (a session on the server). The decisions live in Core/
// (MotionSessionCore, engine-independent and tested); the connection, the avatar and root motion
// settings, the frame order (Update samples, OnAnimatorMove moves the character, LateUpdate writes
// the pose) and driving the avatar (HumanoidDriver) are MotionPlayerBase's, shared with
// MotionStreamPlayer.
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
    public class MotionSessionPlayer : MotionPlayerBase
    {
        // Shown under MotionPlayerBase's "Root motion" header.
        [Tooltip("Ask the server for in-place frames (ROOT_MOTION_IN_PLACE) and move the character by their root velocity and heading instead of following the hips")]
        public bool serverRootMotion = true;

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

        /// <summary>The instruction playing now (its number and text) and how the server understood the last one.</summary>
        public int CurrentInstruction => SessionCore?.CurrentInstruction ?? -1;
        public string CurrentText => SessionCore?.CurrentText ?? "";
        public Interpretation LastInterpretation => SessionCore?.LastInterpretation;
        /// <summary>Every session event (main thread).</summary>
        public event Action<SessionEvent> EventReceived;
        /// <summary>Playback reached the first frame of an instruction (main thread).</summary>
        public event Action<SessionEvent> InstructionStarted;

        MotionSessionCore SessionCore => (MotionSessionCore)Core;

        /// <summary>Steers the motion to text: the next instruction of the running session (the
        /// motion keeps playing and changes from the next window on), or the opening text of a new
        /// session. While connecting it is queued.</summary>
        public void SetInstruction(string text)
        {
            if (string.IsNullOrEmpty(text)) return;
            instruction = text;
            if (QueueUntilConnected(text)) return;
            try
            {
                ApplySettings();
                SessionCore.SetInstruction(text);
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
            if (Core == null) return;
            try
            {
                SessionCore.Close();
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
            }
        }

        void ApplySettings()
        {
            SessionOptions o = SessionCore.Options;
            o.Seed = (ulong)seed;
            o.Guidance = guidance ? Guidance.On : Guidance.Off;
            o.Cleanup = footCleanup ? Cleanup.On : Cleanup.Off;
            o.LookaheadSeconds = lookaheadSeconds;
            o.BufferingDelaySeconds = bufferingDelay;
            o.Coordinates = Coords.Unity;
            o.ServerRotations = retargetMode == RetargetMode.MuscleSpace;
            o.RootMotion = serverRootMotion ? RootMotionMode.InPlace : RootMotionMode.ServerDefault;
        }

        internal override float BlendSeconds => blendSeconds;

        internal override MotionCoreBase CreateCore(MotionClient client, float[] avatarRestPositions63)
        {
            var core = new MotionSessionCore(client, avatarRestPositions63, new SessionOptions());
            core.EventReceived += e => EventReceived?.Invoke(e);
            core.InstructionStarted += e => InstructionStarted?.Invoke(e);
            return core;
        }

        internal override string TextOnConnect => instruction;

        internal override void Send(string text)
        {
            SetInstruction(text);
        }

        internal override void TickCore(double engineTimeSeconds)
        {
            try
            {
                State = Core.Tick(engineTimeSeconds);
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
                return;
            }
            ReportCoreError();
        }
    }
}
#endif
