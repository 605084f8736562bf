// Routes the native library's log (its own messages and gRPC's) to Unity's console instead of the
// process's stderr. Debug.Log is safe to call from the native threads the messages come from.
#if UNITY_5_3_OR_NEWER
using CoAMD.Native;
using UnityEngine;

namespace CoAMD.Unity
{
    public static class CoamdUnityLog
    {
        static bool _installed;

        /// <summary>Messages at or above this level reach the console (set before Install()).</summary>
        public static LogLevel MinimumLevel = LogLevel.Warning;

        /// <summary>Installs the handler once (the player calls it); Uninstall() before the code is
        /// unloaded (the editor does it before an assembly reload, players when quitting).</summary>
        public static void Install()
        {
            if (_installed) return;
            _installed = true;
            CoamdLibrary.SetLogHandler(Write, MinimumLevel);
            Application.quitting += Uninstall;
        }

        public static void Uninstall()
        {
            if (!_installed) return;
            _installed = false;
            CoamdLibrary.SetLogHandler(null, LogLevel.Off);
        }

        static void Write(LogLevel level, string message)
        {
            if (level >= LogLevel.Error) Debug.LogError("CoAMD native: " + message);
            else if (level == LogLevel.Warning) Debug.LogWarning("CoAMD native: " + message);
            else Debug.Log("CoAMD native: " + message);
        }
    }
}
#endif
