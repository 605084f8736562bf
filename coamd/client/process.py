"""Run ``coamd serve`` as a child process on a free loopback port (demo, benchmarks, tests).

The server writes the port it bound to ``--ready-file`` once it accepts calls; this waits for that
file, so callers never race the start-up or pick a port themselves.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ServerStartError(RuntimeError):
    """The server exited or did not report ready in time; the message ends with its log tail."""


def coamd_executable() -> str:
    """The ``coamd`` console script next to the running interpreter."""
    return str(Path(sys.executable).with_name("coamd"))


class ServerProcess:
    """``coamd serve --port 0 ARGS...`` on 127.0.0.1; ``.target`` is ``"127.0.0.1:PORT"``.

    Args:
        args: extra ``coamd serve`` arguments (backend, checkpoint, flags).
        log_path: where the server's stdout/stderr go (default: a temporary file).
        timeout_s: seconds to wait for the ready file (model loading included).
        cwd: working directory of the server process.
    Raises:
        ServerStartError: the process exited early or was not ready within ``timeout_s``.

    Use as a context manager, or call :meth:`stop` (SIGTERM, graceful drain, then kill).
    """

    def __init__(self, args: list[str] | tuple[str, ...] = (), log_path: str | Path | None = None,
                 timeout_s: float = 300.0, cwd: str | Path | None = None):
        tmp = Path(tempfile.mkdtemp(prefix="coamd-serve-"))
        self.ready = tmp / "port"
        self.log_path = Path(log_path) if log_path else tmp / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        cmd = [coamd_executable(), "serve", "--host", "127.0.0.1", "--port", "0",
               "--ready-file", str(self.ready), *args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)
        t0 = time.monotonic()
        while not (self.ready.exists() and self.ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                self.stop()
                raise ServerStartError(f"coamd serve did not start (log {self.log_path}):\n"
                                       f"{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - t0
        self.port = int(self.ready.read_text())
        self.target = f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``grace_s`` for the drain, then kill. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
