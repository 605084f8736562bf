using System;
using System.Threading;
using System.Threading.Tasks;

namespace CoAMD
{
    public enum ConnectionStatus
    {
        Connecting, Connected, Failed, Disposed
    }

    /// <summary>Connects to `coamd serve` on a worker thread, so a game or the editor never waits for
    /// the network: poll Status (or await Task) from the main thread. MotionClient's constructor
    /// fetches the skeleton and may take up to the connect timeout when the server is down.
    /// Disposing while connecting is safe: the client is closed as soon as the attempt ends.</summary>
    public sealed class AsyncConnection : IDisposable
    {
        readonly object _gate = new object();
        MotionClient _client;
        int _status = (int)ConnectionStatus.Connecting;

        public string Address { get; }
        /// <summary>Why the connection failed ("" otherwise).</summary>
        public string Error { get; private set; } = "";
        /// <summary>The CoamdException's status when it failed.</summary>
        public Native.Status FailureStatus { get; private set; }
        /// <summary>Completes when the attempt ended (connected or failed); never faults.</summary>
        public Task Task { get; }

        public ConnectionStatus Status => (ConnectionStatus)Volatile.Read(ref _status);

        /// <summary>The open connection once Status is Connected (owned by this object), else null.</summary>
        public MotionClient Client
        {
            get
            {
                lock (_gate) return Status == ConnectionStatus.Connected ? _client : null;
            }
        }

        public AsyncConnection(string address, bool useTls = false, string rootCertsPem = null, string bearerToken = null,
                               float connectTimeoutSeconds = 5f)
        {
            if (string.IsNullOrEmpty(address)) throw new ArgumentException("address is empty; expected host:port");
            Address = address;
            Task = Task.Run(() => Connect(address, useTls, rootCertsPem, bearerToken, connectTimeoutSeconds));
        }

        void Connect(string address, bool useTls, string rootCerts, string token, float timeout)
        {
            MotionClient client = null;
            string error = "";
            Native.Status failure = Native.Status.Ok;
            try
            {
                client = new MotionClient(address, useTls, rootCerts, token, timeout);
            }
            catch (CoamdException e)
            {
                error = e.Message;
                failure = e.Status;
            }
            catch (Exception e)  // e.g. the native library cannot be loaded
            {
                error = e.GetType().Name + ": " + e.Message;
                failure = Native.Status.Internal;
            }
            lock (_gate)
            {
                if (Status == ConnectionStatus.Disposed)
                {
                    if (client != null) client.Dispose();
                    return;
                }
                _client = client;
                Error = error;
                FailureStatus = failure;
                Volatile.Write(ref _status, (int)(client != null ? ConnectionStatus.Connected : ConnectionStatus.Failed));
            }
        }

        public void Dispose()
        {
            lock (_gate)
            {
                if (_client != null) _client.Dispose();
                _client = null;
                Volatile.Write(ref _status, (int)ConnectionStatus.Disposed);
            }
        }
    }
}
