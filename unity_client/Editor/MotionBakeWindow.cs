// Window > CoAMD > Generate and Bake Motion: asks the server for a motion and saves it as an
// AnimationClip asset (Humanoid muscle curves for any Humanoid, or Generic curves on the motion
// skeleton), so a motion generated once plays without a server. The network never blocks the
// editor: the connection and the stream are polled from EditorApplication.update.
using System;
using CoAMD.Native;
using UnityEditor;
using UnityEngine;

namespace CoAMD.Editor
{
    public class MotionBakeWindow : EditorWindow
    {
        string _server = "127.0.0.1:50051";
        string _token = "";
        string _prompt = "a person walks forward and waves with the right hand";
        float _duration = 4f;
        int _seed;
        bool _guidance = true;
        bool _cleanup = true;
        ClipKind _kind = ClipKind.Humanoid;
        string _status = "";

        AsyncConnection _connection;
        MotionStream _stream;
        string _path;
        string _text;

        [MenuItem("Window/CoAMD/Generate and Bake Motion")]
        static void Open()
        {
            GetWindow<MotionBakeWindow>("CoAMD Bake");
        }

        void OnGUI()
        {
            EditorGUILayout.LabelField("Server", EditorStyles.boldLabel);
            _server = EditorGUILayout.TextField("Address (host:port)", _server);
            _token = EditorGUILayout.TextField("Bearer token", _token);
            EditorGUILayout.LabelField("Motion", EditorStyles.boldLabel);
            _prompt = EditorGUILayout.TextField("Prompt", _prompt);
            _duration = EditorGUILayout.Slider("Duration (s)", _duration, 0.4f, 12f);
            _seed = EditorGUILayout.IntField("Seed", _seed);
            _guidance = EditorGUILayout.Toggle("Recognizer guidance", _guidance);
            _cleanup = EditorGUILayout.Toggle("Foot-contact cleanup", _cleanup);
            _kind = (ClipKind)EditorGUILayout.EnumPopup("Clip", _kind);
            bool busy = _connection != null || _stream != null;
            using (new EditorGUI.DisabledScope(busy || string.IsNullOrEmpty(_prompt)))
            {
                if (GUILayout.Button("Generate and bake...")) Begin();
            }
            if (busy && GUILayout.Button("Cancel")) Finish("cancelled");
            if (!string.IsNullOrEmpty(_status)) EditorGUILayout.HelpBox(_status, MessageType.Info);
        }

        void Begin()
        {
            string name = string.Join("_", _prompt.Split(System.IO.Path.GetInvalidFileNameChars()));
            _path = EditorUtility.SaveFilePanelInProject("Save the baked motion", name, "anim",
                                                          "Where to save the AnimationClip");
            if (string.IsNullOrEmpty(_path)) return;
            _text = _prompt;
            _status = "connecting to " + _server + " ...";
            _connection = new AsyncConnection(_server, false, null, string.IsNullOrEmpty(_token) ? null : _token, 10f);
            EditorApplication.update += Poll;
        }

        void Poll()
        {
            try
            {
                if (_stream == null)
                {
                    if (_connection.Status == ConnectionStatus.Connecting) return;
                    if (_connection.Status != ConnectionStatus.Connected)
                    {
                        Finish("connection failed: " + _connection.Error);
                        return;
                    }
                    var r = new MotionRequest
                    {
                        DurationSeconds = _duration, Seed = (ulong)_seed, Coordinates = Coords.Unity,
                        Guidance = _guidance ? Guidance.On : Guidance.Off,
                        Cleanup = _cleanup ? Cleanup.On : Cleanup.Off,
                        ServerRotations = true,  // hinge-aware twists for the muscle curves
                    };
                    _stream = _connection.Client.Generate(_text, r);
                    _status = "generating ...";
                    Repaint();
                    return;
                }
                StreamInfo info = _stream.Info;
                if (info.Receiving != 0)
                {
                    _status = "generating ... " + info.FramesReceived + " frames";
                    Repaint();
                    return;
                }
                BakedMotion motion = BakedMotion.FromStream(_stream, _text);
                var skeleton = new SourceSkeleton(_connection.Client.ReferencePose(Coords.Unity));
                AnimationClip clip = ClipBaker.Bake(motion, skeleton, _kind);
                AssetDatabase.CreateAsset(clip, _path);
                AssetDatabase.SaveAssets();
                Finish("saved " + _path + " (" + motion.FrameCount + " frames, " + motion.DurationSeconds.ToString("F2") +
                       " s)");
            }
            catch (Exception e)
            {
                Finish("failed: " + e.Message);
            }
        }

        void Finish(string status)
        {
            EditorApplication.update -= Poll;
            if (_stream != null) _stream.Dispose();
            if (_connection != null) _connection.Dispose();
            _stream = null;
            _connection = null;
            _status = status;
            Repaint();
        }

        void OnDisable()
        {
            if (_connection != null || _stream != null) Finish("closed");
        }
    }
}
