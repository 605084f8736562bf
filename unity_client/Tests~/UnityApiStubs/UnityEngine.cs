// Compile-time declarations of the UnityEngine members this package uses, with the signatures of
// Unity 2021.3's scripting API, so that the Unity-facing code (Runtime/Unity, Editor, Samples~) is
// type-checked by mcs outside Unity (CMake target coamd_csharp). This is not an implementation:
// every member that would do something throws; nothing here is executed by the tests.
#pragma warning disable 0067, 0649, 1591
using System;

namespace UnityEngine
{
    static class NotInUnity
    {
        public static Exception Error => new NotSupportedException("compile-time declaration of the Unity API");
    }

    [Flags]
    public enum HideFlags
    {
        None = 0, HideInHierarchy = 1, HideInInspector = 2, DontSaveInEditor = 4, NotEditable = 8,
        DontSaveInBuild = 16, DontUnloadUnusedAsset = 32, DontSave = 52, HideAndDontSave = 61,
    }

    public class Object
    {
        public string name { get; set; }
        public HideFlags hideFlags { get; set; }
        public static void Destroy(Object obj) { throw NotInUnity.Error; }
        public static void DestroyImmediate(Object obj) { throw NotInUnity.Error; }
        public static implicit operator bool(Object exists) { throw NotInUnity.Error; }
    }

    public class Component : Object
    {
        public Transform transform => throw NotInUnity.Error;
        public GameObject gameObject => throw NotInUnity.Error;
        public T GetComponent<T>() { throw NotInUnity.Error; }
    }

    public class Behaviour : Component
    {
        public bool enabled { get; set; }
    }

    public class MonoBehaviour : Behaviour { }

    public class ScriptableObject : Object { }

    public sealed class GameObject : Object
    {
        public GameObject(string name) { throw NotInUnity.Error; }
        public Transform transform => throw NotInUnity.Error;
    }

    public class Transform : Component
    {
        public Vector3 position { get; set; }
        public Quaternion rotation { get; set; }
        public Vector3 localPosition { get; set; }
        public Quaternion localRotation { get; set; }
        public Vector3 lossyScale => throw NotInUnity.Error;
        public void SetParent(Transform parent, bool worldPositionStays) { throw NotInUnity.Error; }
        public Vector3 TransformPoint(Vector3 position) { throw NotInUnity.Error; }
        public Vector3 InverseTransformPoint(Vector3 position) { throw NotInUnity.Error; }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero => new Vector3(0f, 0f, 0f);
        public static Vector3 one => new Vector3(1f, 1f, 1f);
        public static Vector3 up => new Vector3(0f, 1f, 0f);
        public static Vector3 Lerp(Vector3 a, Vector3 b, float t) { throw NotInUnity.Error; }
        public static Vector3 operator +(Vector3 a, Vector3 b) { throw NotInUnity.Error; }
        public static Vector3 operator -(Vector3 a, Vector3 b) { throw NotInUnity.Error; }
        public static Vector3 operator *(Vector3 a, float d) { throw NotInUnity.Error; }
        public static Vector3 operator *(float d, Vector3 a) { throw NotInUnity.Error; }
    }

    public struct Quaternion
    {
        public float x, y, z, w;
        public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; }
        public static Quaternion identity => new Quaternion(0f, 0f, 0f, 1f);
        public static Quaternion Inverse(Quaternion rotation) { throw NotInUnity.Error; }
        public static Quaternion Slerp(Quaternion a, Quaternion b, float t) { throw NotInUnity.Error; }
        public static Quaternion AngleAxis(float angle, Vector3 axis) { throw NotInUnity.Error; }
        public static Quaternion operator *(Quaternion lhs, Quaternion rhs) { throw NotInUnity.Error; }
        public static Vector3 operator *(Quaternion rotation, Vector3 point) { throw NotInUnity.Error; }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { throw NotInUnity.Error; }
    }

    public static class Mathf
    {
        public const float Rad2Deg = 57.29578f;
        public static float Lerp(float a, float b, float t) { throw NotInUnity.Error; }
    }

    public static class Time
    {
        public static double timeAsDouble => throw NotInUnity.Error;
    }

    public static class Debug
    {
        public static void Log(object message) { throw NotInUnity.Error; }
        public static void LogWarning(object message) { throw NotInUnity.Error; }
        public static void LogError(object message) { throw NotInUnity.Error; }
        public static void LogError(object message, Object context) { throw NotInUnity.Error; }
    }

    public static class Application
    {
        public static bool isPlaying => throw NotInUnity.Error;
        public static event Action quitting;
    }

    public class Avatar : Object
    {
        public bool isValid => throw NotInUnity.Error;
        public bool isHuman => throw NotInUnity.Error;
    }

    public class Animator : Behaviour
    {
        public bool isHuman => throw NotInUnity.Error;
        public Avatar avatar { get; set; }
        public bool applyRootMotion { get; set; }
        public Vector3 deltaPosition => throw NotInUnity.Error;
        public Quaternion deltaRotation => throw NotInUnity.Error;
        public Transform GetBoneTransform(HumanBodyBones humanBoneId) { throw NotInUnity.Error; }
    }

    public enum HumanBodyBones
    {
        Hips = 0, LeftUpperLeg = 1, RightUpperLeg = 2, LeftLowerLeg = 3, RightLowerLeg = 4, LeftFoot = 5,
        RightFoot = 6, Spine = 7, Chest = 8, Neck = 9, Head = 10, LeftShoulder = 11, RightShoulder = 12,
        LeftUpperArm = 13, RightUpperArm = 14, LeftLowerArm = 15, RightLowerArm = 16, LeftHand = 17,
        RightHand = 18, LeftToes = 19, RightToes = 20, LeftEye = 21, RightEye = 22, Jaw = 23,
        LeftThumbProximal = 24, LeftThumbIntermediate = 25, LeftThumbDistal = 26, LeftIndexProximal = 27,
        LeftIndexIntermediate = 28, LeftIndexDistal = 29, LeftMiddleProximal = 30, LeftMiddleIntermediate = 31,
        LeftMiddleDistal = 32, LeftRingProximal = 33, LeftRingIntermediate = 34, LeftRingDistal = 35,
        LeftLittleProximal = 36, LeftLittleIntermediate = 37, LeftLittleDistal = 38, RightThumbProximal = 39,
        RightThumbIntermediate = 40, RightThumbDistal = 41, RightIndexProximal = 42, RightIndexIntermediate = 43,
        RightIndexDistal = 44, RightMiddleProximal = 45, RightMiddleIntermediate = 46, RightMiddleDistal = 47,
        RightRingProximal = 48, RightRingIntermediate = 49, RightRingDistal = 50, RightLittleProximal = 51,
        RightLittleIntermediate = 52, RightLittleDistal = 53, UpperChest = 54, LastBone = 55,
    }

    public struct HumanLimit
    {
        public bool useDefaultValues { get; set; }
    }

    public struct HumanBone
    {
        public string boneName { get; set; }
        public string humanName { get; set; }
        public HumanLimit limit;
    }

    public struct SkeletonBone
    {
        public string name;
        public Vector3 position;
        public Quaternion rotation;
        public Vector3 scale;
    }

    public struct HumanDescription
    {
        public HumanBone[] human;
        public SkeletonBone[] skeleton;
        public float upperArmTwist { get; set; }
        public float lowerArmTwist { get; set; }
        public float upperLegTwist { get; set; }
        public float lowerLegTwist { get; set; }
        public float armStretch { get; set; }
        public float legStretch { get; set; }
        public float feetSpacing { get; set; }
        public bool hasTranslationDoF { get; set; }
    }

    public static class AvatarBuilder
    {
        public static Avatar BuildHumanAvatar(GameObject go, HumanDescription humanDescription) { throw NotInUnity.Error; }
    }

    public struct HumanPose
    {
        public Vector3 bodyPosition;
        public Quaternion bodyRotation;
        public float[] muscles;
    }

    public class HumanPoseHandler : IDisposable
    {
        public HumanPoseHandler(Avatar avatar, Transform root) { throw NotInUnity.Error; }
        public void GetHumanPose(ref HumanPose humanPose) { throw NotInUnity.Error; }
        public void SetHumanPose(ref HumanPose humanPose) { throw NotInUnity.Error; }
        public void Dispose() { throw NotInUnity.Error; }
    }

    public static class HumanTrait
    {
        public static int MuscleCount => throw NotInUnity.Error;
        public static string[] MuscleName => throw NotInUnity.Error;
        public static string[] BoneName => throw NotInUnity.Error;
        public static int BoneFromMuscle(int i) { throw NotInUnity.Error; }
    }

    public enum CollisionFlags { None = 0, Sides = 1, Above = 2, Below = 4 }

    public class Collider : Component
    {
        public bool enabled { get; set; }
    }

    public class CharacterController : Collider
    {
        public CollisionFlags Move(Vector3 motion) { throw NotInUnity.Error; }
    }

    public class Rigidbody : Component
    {
        public bool isKinematic { get; set; }
        public Vector3 position { get; set; }
        public Quaternion rotation { get; set; }
        public void MovePosition(Vector3 position) { throw NotInUnity.Error; }
        public void MoveRotation(Quaternion rot) { throw NotInUnity.Error; }
    }

    public struct Keyframe
    {
        public Keyframe(float time, float value) { throw NotInUnity.Error; }
    }

    public class AnimationCurve
    {
        public AnimationCurve(params Keyframe[] keys) { throw NotInUnity.Error; }
    }

    public sealed class AnimationClip : Object
    {
        public float frameRate { get; set; }
        public void SetCurve(string relativePath, Type type, string propertyName, AnimationCurve curve) { throw NotInUnity.Error; }
        public void EnsureQuaternionContinuity() { throw NotInUnity.Error; }
    }

    public class GUIStyle { }

    public sealed class GUISkin : ScriptableObject
    {
        public GUIStyle box => throw NotInUnity.Error;
    }

    public class GUI
    {
        public static GUISkin skin => throw NotInUnity.Error;
    }

    public class GUILayout
    {
        public static void BeginArea(Rect screenRect, GUIStyle style) { throw NotInUnity.Error; }
        public static void EndArea() { throw NotInUnity.Error; }
        public static void Label(string text) { throw NotInUnity.Error; }
        public static string TextField(string text) { throw NotInUnity.Error; }
        public static bool Toggle(bool value, string text) { throw NotInUnity.Error; }
        public static bool Button(string text) { throw NotInUnity.Error; }
        public static float HorizontalSlider(float value, float leftValue, float rightValue) { throw NotInUnity.Error; }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute
    {
        public AddComponentMenu(string menuName) { }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class DisallowMultipleComponent : Attribute { }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class RequireComponent : Attribute
    {
        public RequireComponent(Type requiredComponent) { }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class DefaultExecutionOrder : Attribute
    {
        public DefaultExecutionOrder(int order) { }
    }

    public class PropertyAttribute : Attribute { }

    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
    public class HeaderAttribute : PropertyAttribute
    {
        public HeaderAttribute(string header) { }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public class TooltipAttribute : PropertyAttribute
    {
        public TooltipAttribute(string tooltip) { }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TextAreaAttribute : PropertyAttribute { }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class RangeAttribute : PropertyAttribute
    {
        public RangeAttribute(float min, float max) { }
    }
}
