"""The canonical motion file (``.npz``, DESIGN.md section 4).

Keys: ``joints`` float32 (T, 21, 3) metres, right-handed Y-up; ``fps`` scalar; ``joint_names``
(21,) strings; ``text`` (optional) the prompt a generated motion came from; any extra metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS


class MotionFileError(ValueError):
    """A motion file is missing keys or holds arrays of the wrong shape."""


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
    """Return ``joints`` as float32 (T, 21, 3); raise MotionFileError on a bad shape or NaNs."""
    arr = np.asarray(joints, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or arr.shape[0] < 1:
        raise MotionFileError(f"joints must have shape (T, {NUM_JOINTS}, 3) with T >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MotionFileError("joints contain NaN or infinite values")
    return arr


def save_motion(path: str | Path, joints: np.ndarray, fps: float = FPS, text: str | None = None,
                **extra) -> Path:
    """Write a motion file. ``joints`` (T, 21, 3) metres. Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"joints": validate_joints(joints), "fps": np.float32(fps),
            "joint_names": np.array(JOINT_NAMES)}
    if text is not None:
        data["text"] = np.array(text)
    data.update({k: np.asarray(v) for k, v in extra.items()})
    np.savez(path, **data)
    return path


def load_motion(path: str | Path) -> Motion:
    """Read a motion file. Raises FileNotFoundError, or MotionFileError on bad content."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"motion file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "joints" not in z.files:
                raise MotionFileError(f"{path}: no 'joints' array")
            joints = validate_joints(z["joints"])
            fps = float(z["fps"]) if "fps" in z.files else FPS
            if "joint_names" in z.files and tuple(str(n) for n in z["joint_names"]) != JOINT_NAMES:
                raise MotionFileError(f"{path}: joint_names differ from the canonical skeleton")
            text = str(z["text"]) if "text" in z.files else None
            extra = {k: z[k] for k in z.files if k not in ("joints", "fps", "joint_names", "text")}
    except (OSError, ValueError) as exc:
        if isinstance(exc, MotionFileError):
            raise
        raise MotionFileError(f"{path}: not a readable .npz motion file ({exc})") from exc
    return Motion(joints, fps, text, extra)
