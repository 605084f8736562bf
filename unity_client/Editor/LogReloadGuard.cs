// The native library keeps a pointer to the managed log handler: remove it before the editor
// reloads the C# domain, or the library would call into unloaded code.
using CoAMD.Unity;
using UnityEditor;

namespace CoAMD.Editor
{
    [InitializeOnLoad]
    static class LogReloadGuard
    {
        static LogReloadGuard()
        {
            AssemblyReloadEvents.beforeAssemblyReload += CoamdUnityLog.Uninstall;
        }
    }
}
