// Compile-time declarations of the UnityEditor members this package uses (see UnityEngine.cs).
#pragma warning disable 0067, 0649, 1591
using System;
using UnityEngine;

namespace UnityEditor
{
    public class EditorWindow : ScriptableObject
    {
        public static T GetWindow<T>(string title) where T : EditorWindow { throw new NotSupportedException(); }
        public void Repaint() { throw new NotSupportedException(); }
    }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
    public sealed class MenuItem : Attribute
    {
        public MenuItem(string itemName) { }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class InitializeOnLoadAttribute : Attribute { }

    public enum MessageType { None, Info, Warning, Error }

    public sealed class EditorStyles
    {
        public static GUIStyle boldLabel => throw new NotSupportedException();
    }

    public sealed class EditorGUI
    {
        public struct DisabledScope : IDisposable
        {
            public DisabledScope(bool disabled) { throw new NotSupportedException(); }
            public void Dispose() { throw new NotSupportedException(); }
        }
    }

    public sealed class EditorGUILayout
    {
        public static void LabelField(string label, GUIStyle style) { throw new NotSupportedException(); }
        public static string TextField(string label, string text) { throw new NotSupportedException(); }
        public static float Slider(string label, float value, float leftValue, float rightValue) { throw new NotSupportedException(); }
        public static int IntField(string label, int value) { throw new NotSupportedException(); }
        public static bool Toggle(string label, bool value) { throw new NotSupportedException(); }
        public static Enum EnumPopup(string label, Enum selected) { throw new NotSupportedException(); }
        public static void HelpBox(string message, MessageType type) { throw new NotSupportedException(); }
    }

    public sealed class EditorUtility
    {
        public static string SaveFilePanelInProject(string title, string defaultName, string extension, string message)
        {
            throw new NotSupportedException();
        }
    }

    public sealed class AssetDatabase
    {
        public static void CreateAsset(UnityEngine.Object asset, string path) { throw new NotSupportedException(); }
        public static void SaveAssets() { throw new NotSupportedException(); }
    }

    public sealed class EditorApplication
    {
        public delegate void CallbackFunction();
        public static CallbackFunction update;
    }

    public static class AssemblyReloadEvents
    {
        public delegate void AssemblyReloadCallback();
        public static event AssemblyReloadCallback beforeAssemblyReload;
    }

    public struct EditorCurveBinding
    {
        public static EditorCurveBinding FloatCurve(string inPath, Type inType, string inPropertyName)
        {
            throw new NotSupportedException();
        }
    }

    public class AnimationUtility
    {
        public static void SetEditorCurve(AnimationClip clip, EditorCurveBinding binding, AnimationCurve curve)
        {
            throw new NotSupportedException();
        }
    }
}
