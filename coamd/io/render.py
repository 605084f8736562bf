"""Stick-figure previews of motions (GIF or MP4) with a floor grid and the hips trajectory.

Rendering uses matplotlib (Agg) for frames and imageio (Pillow for GIF, the ffmpeg binary shipped
in ``imageio-ffmpeg`` for MP4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from coamd.io.motion import OutputPathError, check_output_path
from coamd.skeleton import BONES, JOINT_NAMES

_LEFT = {i for i, n in enumerate(JOINT_NAMES) if n.endswith("_L")}
_RIGHT = {i for i, n in enumerate(JOINT_NAMES) if n.endswith("_R")}


def render_motion(joints: np.ndarray, out: str | Path, fps: float = 20.0, title: str | None = None,
                  size_px: int = 360, max_frames: int | None = None, progress: bool = False) -> Path:
    """Render ``joints`` (T, 21, 3) metres (Y up) to ``out`` (``.gif`` or ``.mp4``).

    Left-side bones are blue, right-side red, the spine black; the hips path is drawn on the
    floor. The folder of ``out`` is created if missing and checked for writing before any frame
    is drawn. Raises ValueError for another file extension or a bad array shape, OutputPathError
    (an OSError) when ``out`` cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import imageio.v2 as imageio
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".gif", ".mp4"):
        raise ValueError(f"preview must be .gif or .mp4, got {out.name}")
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINT_NAMES), 3):
        raise ValueError(f"joints must be (T, 21, 3), got {joints.shape}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"preview {out}: cannot create folder {out.parent} ({exc.strerror or exc})") from exc
    check_output_path(out, "preview")
    if max_frames is not None:
        joints = joints[:max_frames]
    # plot as (x, z, y): matplotlib's vertical axis is its third one
    P = joints[..., [0, 2, 1]]
    lo = P.reshape(-1, 3).min(0)
    hi = P.reshape(-1, 3).max(0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo)[:2].max()) / 2 + 0.3, 1.0)
    fig = plt.figure(figsize=(size_px / 100, size_px / 100), dpi=100)
    ax = fig.add_subplot(111, projection="3d")
    frames = []
    grid = np.arange(np.floor(centre[0] - half), np.ceil(centre[0] + half) + 0.01, 0.5)
    gridz = np.arange(np.floor(centre[1] - half), np.ceil(centre[1] + half) + 0.01, 0.5)
    for t in tqdm(range(P.shape[0]), desc=f"rendering {out.name}", unit="frame", disable=not progress):
        ax.cla()
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(0, max(2.0, float(hi[2]) + 0.1))
        ax.set_box_aspect((1, 1, max(2.0, float(hi[2]) + 0.1) / (2 * half)))
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
        for gx in grid:
            ax.plot([gx, gx], [gridz[0], gridz[-1]], [0, 0], color="0.85", lw=0.5)
        for gz in gridz:
            ax.plot([grid[0], grid[-1]], [gz, gz], [0, 0], color="0.85", lw=0.5)
        ax.plot(P[: t + 1, 0, 0], P[: t + 1, 0, 1], np.zeros(t + 1), color="tab:green", lw=1.0)
        for c, p in BONES:
            col = "tab:blue" if c in _LEFT else "tab:red" if c in _RIGHT else "k"
            ax.plot(*[[P[t, p, k], P[t, c, k]] for k in range(3)], color=col, lw=2)
        ax.set_title(f"{title + '  ' if title else ''}{t / fps:5.2f} s", fontsize=8)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    if ext == ".gif":
        imageio.mimsave(out, frames, duration=1000.0 / fps, loop=0)
    else:
        imageio.mimsave(out, frames, fps=fps, codec="libx264", macro_block_size=8,
                        output_params=["-pix_fmt", "yuv420p"])
    return out
