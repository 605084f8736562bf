// Sample: an immediate-mode panel to type a prompt, toggle guidance, root motion and looping, and
// watch the connection and playback state of a MotionStreamPlayer.
#if UNITY_5_3_OR_NEWER
using CoAMD.Unity;
using UnityEngine;

namespace CoAMD.Samples
{
    public class PromptPanel : MonoBehaviour
    {
        public MotionStreamPlayer player;
        string _text = "a person walks forward and waves with the right hand";

        void OnGUI()
        {
            if (player == null) return;
            GUILayout.BeginArea(new Rect(10, 10, 440, 300), GUI.skin.box);
            GUILayout.Label("Server: " + player.serverAddress + " - " + player.Connection);
            GUILayout.Label("Prompt");
            _text = GUILayout.TextField(_text);
            player.guidance = GUILayout.Toggle(player.guidance, "Recognizer guidance (quality; off = faster)");
            player.rootMotion = GUILayout.Toggle(player.rootMotion, "Root motion (off = in place)");
            player.loop = GUILayout.Toggle(player.loop, "Loop");
            GUILayout.Label("Weight over the Animator: " + player.weight.ToString("F2"));
            player.weight = GUILayout.HorizontalSlider(player.weight, 0f, 1f);
            if (GUILayout.Button("Generate")) player.Request(_text);
            if (player.Connection == ConnectionStatus.Failed && GUILayout.Button("Reconnect")) player.Connect();
            GUILayout.Label("State: " + player.State);
            if (!string.IsNullOrEmpty(player.LastError)) GUILayout.Label("Error: " + player.LastError);
            GUILayout.EndArea();
        }
    }
}
#endif
