"""The canonical motion file (``.npz``, DESIGN.md section 4).

Keys: ``joints`` float32 (T, 21, 3) metres, right-handed Y-up; ``fps`` scalar; ``joint_names``
(21,) strings; ``text`` (optional) the prompt a generated motion came from; any extra metadata.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_NPY_MAGIC = b"\x93NUMPY"
# what reading a damaged archive member can raise (numpy, zipfile, zlib)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


class MotionFileError(ValueError):
    """A file is not a valid motion file; the message names the file and says why (not a zip
    archive, truncated or damaged, no ``joints`` array, wrong shape, non-finite values, ...)."""


class OutputPathError(OSError):
    """An output path cannot be written (missing or unwritable folder, a folder in its place)."""


@dataclass
class Motion:
    """Joint positions ``joints`` (T, 21, 3) float32 metres at ``fps`` frames per second."""

    joints: np.ndarray
    fps: float = FPS
    text: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.joints.shape[0] / self.fps


def validate_joints(joints: np.ndarray) -> np.ndarray:
    """Return ``joints`` as float32 (T, 21, 3); raise MotionFileError on a bad shape, a
    non-numeric dtype or NaN/infinite values."""
    arr = np.asarray(joints)
    if arr.dtype.kind not in "biuf":
        raise MotionFileError(f"joints must be numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or arr.shape[0] < 1:
        raise MotionFileError(f"joints must have shape (T, {NUM_JOINTS}, 3) with T >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MotionFileError("joints contain NaN or infinite values")
    return arr


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """Check that ``path`` can be written now, before any expensive work produces its content.

    The folder must exist and accept a new file (probed by creating and removing a temporary
    file, so read-only mounts and ACLs count too), and ``path`` must not be a folder or a
    read-only file. ``what`` names the path in messages (e.g. ``--out``). Returns ``path``.
    Raises OutputPathError with the reason.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name")
    if not folder.exists():
        raise OutputPathError(f"{what} {path}: folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise OutputPathError(f"{what} {path}: {folder} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{what} {path} exists and is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".coamd-write-check-"):
            pass
    except OSError as exc:
        raise OutputPathError(f"{what} {path}: cannot write to folder {folder} "
                              f"({exc.strerror or exc})") from exc
    return path


def save_motion(path: str | Path, joints: np.ndarray, fps: float = FPS, text: str | None = None,
                **extra) -> Path:
    """Write a motion file. ``joints`` (T, 21, 3) metres; ``text`` a string; ``extra`` values
    numbers, strings or arrays of them. Returns the path written. Raises MotionFileError for bad
    joints, ValueError for a value :func:`load_motion` could not read back (Python objects)."""
    path = Path(path)
    data = {"joints": validate_joints(joints), "fps": np.float32(fps),
            "joint_names": np.array(JOINT_NAMES)}
    if text is not None:
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        data["text"] = np.array(text)
    for k, v in extra.items():
        arr = np.asarray(v)
        if arr.dtype == object:
            raise ValueError(f"motion file value {k!r} must be numbers or strings, got {type(v).__name__}")
        data[k] = arr
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return path


def _not_a_zip_reason(head: bytes) -> str:
    if head.startswith(_NPY_MAGIC):
        return ("it is a single .npy array; a motion file is an .npz archive holding a "
                f"'joints' array (T, {NUM_JOINTS}, 3)")
    if head.lstrip().upper().startswith(b"HIERARCHY"):
        return "it is a BVH file; convert it with `coamd data convert FILE.bvh --out FILE.npz`"
    return f"not a zip archive (an .npz is a zip of .npy arrays; the file starts with {head[:8]!r})"


def load_motion(path: str | Path) -> Motion:
    """Read a motion file (``joints`` (T, 21, 3) metres, ``fps``, optional ``text``).

    Raises FileNotFoundError when ``path`` does not exist, or MotionFileError naming the file and
    the reason it is not a valid motion .npz (empty, not a zip archive, truncated or damaged
    archive, no ``joints``, wrong shape or dtype, NaN, bad ``fps`` or ``joint_names``, unreadable).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"motion file {path} does not exist")

    def bad(reason: str) -> MotionFileError:
        return MotionFileError(f"{path} is not a valid motion .npz: {reason}")

    if path.is_dir():
        raise bad("it is a folder")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise MotionFileError(f"cannot read motion file {path}: {exc.strerror or exc}") from exc
    if not head:
        raise bad("the file is empty (0 bytes)")
    if head.startswith(_EMPTY_ZIP_MAGIC):
        raise bad("the zip archive is empty (no 'joints' array)")
    if not head.startswith(_ZIP_MAGIC):
        raise bad(_not_a_zip_reason(head))
    try:
        z = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise bad(f"truncated or damaged zip archive of {path.stat().st_size} bytes ({exc})") from exc
    with z:
        if "joints" not in z.files:
            have = ", ".join(repr(k) for k in z.files) or "nothing"
            raise bad(f"no 'joints' array (it holds {have})")

        def read(key: str) -> np.ndarray:
            try:
                return z[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise bad(f"{key!r} holds Python objects, not an array of numbers or strings") from exc
                raise bad(f"damaged {key!r} array ({exc})") from exc
            except _READ_ERRORS as exc:
                raise bad(f"truncated or damaged {key!r} array ({exc})") from exc

        try:
            joints = validate_joints(read("joints"))
        except MotionFileError as exc:
            if str(exc).startswith(str(path)):
                raise
            raise bad(str(exc)) from exc
        fps = FPS
        if "fps" in z.files:
            f = read("fps")
            if f.size != 1 or f.dtype.kind not in "biuf" or not np.isfinite(f).all() or float(f.reshape(())) <= 0:
                raise bad(f"'fps' must be one positive number, got {f!r}")
            fps = float(f.reshape(()))
        if "joint_names" in z.files:
            names = read("joint_names")
            if names.ndim != 1 or tuple(str(n) for n in names) != JOINT_NAMES:
                raise bad("joint_names differ from the canonical 21-joint skeleton")
        text = None
        if "text" in z.files:
            t = read("text")
            text = str(t.reshape(())) if t.size == 1 else None
        extra = {k: read(k) for k in z.files if k not in ("joints", "fps", "joint_names", "text")}
    return Motion(joints, fps, text, extra)
