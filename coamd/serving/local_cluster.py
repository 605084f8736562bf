"""A Ray cluster of several nodes on this machine, for the cluster tests and ``benchmarks/load.py
--ray``: ``ray start --head`` plus ``ray start --address`` per extra node, small CPU counts.

Each ``ray start`` runs in a session of its own (``setsid``), and every process Ray starts for that
node (GCS, raylet, agents, workers, replicas) stays in it, so :meth:`LocalRayCluster.stop` ends
exactly this cluster's processes -- never another Ray cluster on the machine -- and
:meth:`LocalRayCluster.leftovers` proves none is left behind.

The cluster uses Ray's token authentication with a token of its own (a file in its temporary
folder): Ray binds the machine's address, not only loopback, and without a token anyone who can
reach it could run code on it. It also keeps the cluster independent of a token in
``~/.ray/auth_token``. :meth:`LocalRayCluster.connect` sets the token's environment for this
process (and the processes it starts, e.g. ``coamd deploy``) and connects.

    with LocalRayCluster(cpus=(1, 1)) as cluster:     # head + one more node, 1 CPU each
        cluster.connect()                             # ray.init(address=..., token)
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ClusterStartError(RuntimeError):
    """``ray start`` failed; the message holds its output."""


def free_port() -> int:
    """A free TCP port on loopback (from the kernel's ephemeral range, above Ray's worker ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_executable() -> str:
    """The ``ray`` console script next to the running interpreter (or on PATH)."""
    here = Path(sys.executable).with_name("ray")
    return str(here) if here.exists() else (shutil.which("ray") or "ray")


def _sessions_of(sids: set[int]) -> list[tuple[int, str]]:
    """(pid, command) of every live process whose session id is in ``sids``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            state, sid = fields[0], int(fields[3])
            if sid in sids and state != "Z":
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                out.append((int(d.name), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _refresh_ray_auth() -> None:
    """Ray reads ``RAY_AUTH_MODE`` and the token once per process; make an already imported Ray
    see the values just set (what Ray's own token set-up does when it turns authentication on)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # noqa: BLE001 - another Ray version: the environment alone must do
        pass


class LocalRayCluster:
    """``len(cpus)`` Ray nodes on this machine (the first is the head), ``cpus[i]`` CPUs each.

    ``env``: extra environment of every Ray process (e.g. Serve's metric push intervals).
    ``resources``: custom resources per node (list of dicts, same length as ``cpus``).
    ``object_store_mb``: object store size per node (Ray's minimum is about 75 MB).
    Raises ClusterStartError when a node does not start.
    """

    def __init__(self, cpus=(1, 1), env: dict | None = None, resources: list | None = None,
                 object_store_mb: int = 100, temp_dir: str | None = None):
        self.cpus = tuple(cpus)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.resources = resources or [None] * len(self.cpus)
        self.object_store_mb = object_store_mb
        # short: Ray's Unix socket paths live under it (108-byte limit)
        self.temp_dir = temp_dir or tempfile.mkdtemp(prefix="cray-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.sids: set[int] = set()
        self.start_s = 0.0
        token = Path(self.temp_dir) / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.env.update(self.auth_env)
        self._saved_env: dict | None = None

    def _ray_start(self, args: list[str]) -> None:
        proc = subprocess.Popen([ray_executable(), "start", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.sids.add(proc.pid)   # the session leader's pid is the session id
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise ClusterStartError(f"ray start {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")

    def start(self) -> "LocalRayCluster":
        t0 = time.monotonic()
        common = [f"--object-store-memory={self.object_store_mb * 1024 * 1024}", "--disable-usage-stats"]
        try:
            for i, n in enumerate(self.cpus):
                extra = [f"--num-cpus={n}", *common]
                if self.resources[i]:
                    extra.append(f"--resources={json.dumps(self.resources[i])}")
                if i == 0:
                    self._ray_start(["--head", f"--port={self.port}", "--include-dashboard=false",
                                     f"--temp-dir={self.temp_dir}", f"--ray-client-server-port={free_port()}",
                                     f"--dashboard-agent-listen-port={free_port()}", *extra])
                else:
                    self._ray_start([f"--address={self.address}",
                                     f"--dashboard-agent-listen-port={free_port()}", *extra])
        except BaseException:
            self.stop()
            raise
        self.start_s = time.monotonic() - t0
        return self

    def connect(self, **kwargs):
        """Set the cluster's token environment in this process (children inherit it) and
        ``ray.init`` to the head; keyword arguments go to ``ray.init``. :meth:`stop` restores the
        environment."""
        import logging

        import ray

        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in self.auth_env}
        os.environ.update(self.auth_env)
        _refresh_ray_auth()
        kwargs.setdefault("log_to_driver", False)
        kwargs.setdefault("logging_level", logging.WARNING)
        return ray.init(address=self.address, **kwargs)

    def _restore_env(self) -> None:
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None
            _refresh_ray_auth()

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command) of this cluster's live processes."""
        return _sessions_of(self.sids)

    def stop(self, grace_s: float = 2.0) -> list[tuple[int, str]]:
        """SIGTERM every process of the cluster, SIGKILL what is left after ``grace_s``; returns
        the processes still alive after that (should be none)."""
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            procs = self.processes()
            for pid, _ in procs:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.processes():
                break
        left = self.processes()
        self._restore_env()
        if not left:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return left

    def leftovers(self) -> list[tuple[int, str]]:
        return self.processes()

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
