// The Unity layer (the only part that needs UnityEngine): requests motions from text and drives a
// Humanoid avatar with them. Everything it decides lives in Core/ (engine-independent, tested):
// connection (AsyncConnection), playback, blending and root motion (MotionPlayerCore), direct
// retargeting (HumanoidRetarget), the source skeleton (SourceSkeleton). The connection, the settings
// of the avatar and of root motion, the frame order and driving the avatar (HumanoidDriver) are
// MotionPlayerBase's, shared with MotionSessionPlayer; this player adds one-shot requests.
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
    public class MotionStreamPlayer : MotionPlayerBase
    {
        // Shown under MotionPlayerBase's "Root motion" header.
        [Tooltip("Ask the server for in-place frames (ROOT_MOTION_IN_PLACE) and move the character by their root velocity and heading instead of following the hips")]
        public bool serverRootMotion;

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

        PlaybackState _lastState = PlaybackState.Finished;

        MotionPlayerCore PlayerCore => (MotionPlayerCore)Core;

        /// <summary>Requests a motion for text. While connecting it is queued; while another motion
        /// plays, that one continues until the new one is buffered, then blends into it.</summary>
        public void Request(string text)
        {
            prompt = text;
            if (QueueUntilConnected(text)) return;
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
                PlayerCore.Play(text, r);
                LastError = "";
            }
            catch (CoamdException e)
            {
                Fail(e.Message);
            }
        }

        internal override float BlendSeconds => blendSeconds;

        internal override MotionCoreBase CreateCore(MotionClient client, float[] avatarRestPositions63)
        {
            return new MotionPlayerCore(client, avatarRestPositions63);
        }

        internal override string TextOnConnect => playOnConnect ? prompt : null;

        internal override void Send(string text)
        {
            Request(text);
        }

        internal override void TickCore(double engineTimeSeconds)
        {
            State = Core.Tick(engineTimeSeconds);
            ReportCoreError();
            if (State == PlaybackState.Finished && _lastState != PlaybackState.Finished && loop) PlayerCore.Replay();
            _lastState = State;
        }
    }
}
#endif
