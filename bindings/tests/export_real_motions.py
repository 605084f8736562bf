"""Export a few real motions of the processed dataset as a text file for the C++ tests.

Run by CTest (the `export_real_motions` fixture) at test time, so no motion data is committed.
Format (whitespace-separated floats, metres, the project's right-handed Y-up frame, 20 fps):

    coamd-real-motions 1
    clips N
    clip ID T
    rest x0 y0 z0 ... (21 x 3: parent-relative bone vectors of the clip's first frame; root = 0)
    T lines of 21 x 3 joint positions

Clips: the first test-split clip of each of a few contents (a walk, a turn, a wave, a bow), their
first --max-frames frames.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CONTENTS = ("walk", "walk-turn-left", "wave-right-hand", "run", "bow")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="processed dataset folder (make data)")
    p.add_argument("--out", required=True, help="output text file")
    p.add_argument("--max-frames", type=int, default=120, help="frames per clip (default: %(default)s)")
    a = p.parse_args(argv)

    from coamd.data.dataset import MotionDataset
    from coamd.skeleton import PARENTS

    root = Path(a.dataset)
    if not (root / "motions.npz").exists():
        print(f"processed dataset not found at {root}; run `make data`", file=sys.stderr)
        return 2
    ds = MotionDataset(root)
    chosen = []
    for content in CONTENTS:
        clip = next((c for c in ds.split("test") if c.content == content and not c.mirrored), None)
        if clip is None:
            print(f"no test clip with content {content!r} in {root}", file=sys.stderr)
            return 2
        chosen.append(clip)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        f.write("coamd-real-motions 1\n")
        f.write(f"clips {len(chosen)}\n")
        for clip in chosen:
            joints = np.asarray(clip.joints[: a.max_frames], dtype=np.float32)
            rest = np.zeros((21, 3), dtype=np.float32)
            for j, parent in enumerate(PARENTS):
                if parent >= 0:
                    rest[j] = joints[0, j] - joints[0, parent]
            f.write(f"clip {clip.id} {len(joints)}\n")
            f.write("rest " + " ".join(f"{v:.9g}" for v in rest.reshape(-1)) + "\n")
            for frame in joints:
                f.write(" ".join(f"{v:.9g}" for v in frame.reshape(-1)) + "\n")
    print(f"wrote {len(chosen)} real clips to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
