using System;
using CoAMD.Native;

namespace CoAMD
{
    /// <summary>One native object (client, stream, reader, session) owned by a managed wrapper: Get()
    /// returns it or throws ObjectDisposedException naming the wrapper once it was released; Release()
    /// (the wrapper's Dispose) or, failing that, the finalizer destroys it exactly once.</summary>
    internal sealed class NativeHandle
    {
        readonly Action<IntPtr> _destroy;
        readonly string _owner;
        IntPtr _handle;

        /// <param name="handle">the native object (not IntPtr.Zero).</param>
        /// <param name="destroy">its coamd_*_destroy function.</param>
        /// <param name="owner">the wrapper's type name, for ObjectDisposedException.</param>
        internal NativeHandle(IntPtr handle, Action<IntPtr> destroy, string owner)
        {
            _handle = handle;
            _destroy = destroy;
            _owner = owner;
        }

        internal IntPtr Get()
        {
            if (_handle == IntPtr.Zero) throw new ObjectDisposedException(_owner);
            return _handle;
        }

        internal void Release()
        {
            if (_handle != IntPtr.Zero) _destroy(_handle);
            _handle = IntPtr.Zero;
            GC.SuppressFinalize(this);
        }

        ~NativeHandle()
        {
            if (_handle != IntPtr.Zero) _destroy(_handle);
        }

        /// <summary>The text of a (handle, buf, bufLen, out length) copy function (coamd_stream_error_copy,
        /// coamd_session_error_copy) in full; CoamdException when the library refuses.</summary>
        internal string CopyText(TextCopyOf copy)
        {
            IntPtr h = Get();
            string text = CoamdNative.CopyText((byte[] buf, int len, out int n) => copy(h, buf, len, out n));
            if (text == null) throw new CoamdException(Status.Internal, CoamdNative.LastError());
            return text;
        }

        internal delegate int TextCopyOf(IntPtr handle, byte[] buf, int bufLen, out int length);
    }
}
