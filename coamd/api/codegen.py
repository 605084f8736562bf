"""Generation of the gRPC contract's Python code from ``proto/coamd/v1/motion.proto`` on first use.

The generated modules are never committed: the ``.proto`` file is the single source of truth
(other languages generate their own code from it). On the first import, or whenever the
``.proto`` file changed, ``grpc_tools.protoc`` writes ``coamd/_proto/coamd/v1/motion_pb2.py`` and
``motion_pb2_grpc.py`` into the package folder (gitignored), which works in a fresh clone and in an
editable install. Generation is atomic (a temporary folder renamed into place) and guarded by a
lock file, so several processes starting at once (a server and its clients) never see a half
written module. Where the package folder is read-only, the code goes to
``$XDG_CACHE_HOME/coamd/proto/<hash>/`` instead.

Use the package, not this module::

    from coamd.api import pb, pb_grpc   # motion_pb2, motion_pb2_grpc
    req = pb.GenerateRequest(text="a person walks", duration_s=4.0)

Set ``COAMD_PROTO`` to use another copy of ``motion.proto``.
Raises ``ProtoError`` when the ``.proto`` file or ``grpcio-tools`` is missing or protoc fails.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]          # .../coamd (this file: coamd/api/)
REPO_PROTO_ROOT = PACKAGE_DIR.parent / "proto"              # .../proto (repository root)
PROTO_REL = "coamd/v1/motion.proto"
GEN_PACKAGE = "coamd._proto"


class ProtoError(RuntimeError):
    """The gRPC contract could not be found or compiled."""


def proto_file() -> Path:
    """Path of ``motion.proto`` (``COAMD_PROTO`` overrides). Raises ProtoError if missing."""
    env = os.environ.get("COAMD_PROTO")
    path = Path(env) if env else REPO_PROTO_ROOT / PROTO_REL
    if not path.is_file():
        raise ProtoError(f"gRPC contract not found at {path}; run from a source checkout "
                         "(editable install) or set COAMD_PROTO to motion.proto")
    return path


def _digest(text: bytes) -> str:
    import grpc_tools

    ver = getattr(grpc_tools, "__version__", "") or ""
    return hashlib.sha256(text + ver.encode()).hexdigest()[:16]


def _compile(src: Path, out_root: Path) -> None:
    """Run protoc on ``src`` writing ``out_root/coamd/v1/motion_pb2*.py`` with package-relative imports."""
    try:
        from grpc_tools import protoc
        import grpc_tools
    except ImportError as exc:  # pragma: no cover - grpcio-tools is a dependency
        raise ProtoError("grpcio-tools is not installed (pip install grpcio-tools)") from exc
    with tempfile.TemporaryDirectory() as tmp:
        inc = Path(tmp) / "src"
        (inc / "coamd" / "v1").mkdir(parents=True)
        shutil.copyfile(src, inc / PROTO_REL)
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        args = ["grpc_tools.protoc", f"-I{inc}", f"-I{well_known}", f"--python_out={out_root}",
                f"--grpc_python_out={out_root}", f"--pyi_out={out_root}", str(inc / PROTO_REL)]
        if protoc.main(args) != 0:
            raise ProtoError(f"protoc failed on {src}")
    gen = out_root / "coamd" / "v1"
    grpc_file = gen / "motion_pb2_grpc.py"
    # protoc writes `from coamd.v1 import motion_pb2`, which would clash with our own package.
    text = grpc_file.read_text()
    grpc_file.write_text(text.replace("from coamd.v1 import motion_pb2",
                                      f"from {GEN_PACKAGE}.coamd.v1 import motion_pb2"))
    for d in (out_root, out_root / "coamd", gen):
        (d / "__init__.py").touch()


def _ensure_at(target: Path, stamp_value: str, src: Path) -> bool:
    """Generate into ``target`` unless its stamp matches. Returns False if the folder is not writable."""
    stamp = target / "STAMP"
    if stamp.is_file() and stamp.read_text().strip() == stamp_value:
        return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(target).encode()).hexdigest()[:12]
        lock_path = Path(tempfile.gettempdir()) / f"coamd-proto-{key}.lock"
        import fcntl

        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if stamp.is_file() and stamp.read_text().strip() == stamp_value:
                return True
            tmp = Path(tempfile.mkdtemp(prefix=".proto-", dir=target.parent))
            try:
                _compile(src, tmp)
                (tmp / "STAMP").write_text(stamp_value + "\n")
                old = None
                if target.exists():
                    old = target.parent / f".old-{os.getpid()}-{target.name}"
                    target.rename(old)
                tmp.rename(target)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except PermissionError:
        return False
    except OSError as exc:
        if exc.errno in (13, 30):  # EACCES, EROFS
            return False
        raise
    return True


def _register_external(root: Path) -> None:
    """Make ``coamd._proto`` import from ``root`` (the cache folder) instead of the package folder."""
    for name, sub in ((GEN_PACKAGE, root), (GEN_PACKAGE + ".coamd", root / "coamd"),
                      (GEN_PACKAGE + ".coamd.v1", root / "coamd" / "v1")):
        mod = types.ModuleType(name)
        mod.__path__ = [str(sub)]
        sys.modules[name] = mod


def ensure_generated() -> Path:
    """Generate the Python code if missing or stale; return the folder holding ``coamd/v1/``."""
    src = proto_file()
    stamp_value = _digest(src.read_bytes())
    target = PACKAGE_DIR / "_proto"
    if _ensure_at(target, stamp_value, src):
        return target
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coamd" / "proto" / stamp_value
    if not _ensure_at(cache, stamp_value, src):
        raise ProtoError(f"cannot write generated code to {target} or {cache}")
    _register_external(cache)
    return cache


def load():
    """Generate if needed and import the modules: ``(motion_pb2, motion_pb2_grpc)``.
    Raises ProtoError (see the module docstring)."""
    ensure_generated()
    importlib.invalidate_caches()
    pb_ = importlib.import_module(GEN_PACKAGE + ".coamd.v1.motion_pb2")
    pb_grpc_ = importlib.import_module(GEN_PACKAGE + ".coamd.v1.motion_pb2_grpc")
    return pb_, pb_grpc_


if __name__ == "__main__":  # `python -m coamd.api.codegen`: generate now and say where
    print(f"generated the contract from {proto_file()} into {ensure_generated()}")
