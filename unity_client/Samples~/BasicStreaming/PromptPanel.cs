// Sample: an immediate-mode panel to type a prompt, toggle guidance and root motion, and watch
// the playback state of a MotionStreamPlayer.
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
            GUILayout.BeginArea(new Rect(10, 10, 420, 220), GUI.skin.box);
            GUILayout.Label("Prompt");
            _text = GUILayout.TextField(_text);
            player.guidance = GUILayout.Toggle(player.guidance, "Recognizer guidance (quality; off = faster)");
            player.rootMotion = GUILayout.Toggle(player.rootMotion, "Root motion (off = in place)");
            player.loop = GUILayout.Toggle(player.loop, "Loop");
            if (GUILayout.Button("Generate")) player.Request(_text);
            GUILayout.Label("State: " + player.State);
            if (!string.IsNullOrEmpty(player.LastError)) GUILayout.Label("Error: " + player.LastError);
            GUILayout.EndArea();
        }
    }
}
#endif
