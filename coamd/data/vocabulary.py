"""The model's vocabulary: which actions (content labels) and styles it was trained on, how many
training clips each has, and a plain sentence describing each.

``build_vocabulary(dataset)`` reads a processed dataset (``clips.json``, ``labels.json``) and
counts the train split; ``write_vocabulary`` stores it as ``vocabulary.json`` next to the weights
(``coamd/checkpoints/default/vocabulary.json`` for the shipped ones, written by ``make train`` and
by ``python -m coamd.data.vocabulary --dataset data/processed --out DIR``), so a server answers
``GetCapabilities`` without the dataset and without torch.

File format (JSON): ``{"actions": [{"label", "description", "training_clips",
"training_clips_with_mirrors", "side", "recorded_with"}...], "styles": [...same keys, side
""...], "rare_below_clips": 15, "source": "<dataset folder name>"}``; ``training_clips`` counts
source clips of the train split (mirrored copies not counted; a mirrored copy of a sided clip
counts for the other side under ``training_clips_with_mirrors``). ``recorded_with`` maps, for an
action, each style it was recorded in to its training clips of that pair (for a style: each
action recorded in it), mirrored copies not counted, pairs without a clip left out. An action
with at least ``rare_below_clips`` clips and no clip in a style is never generated in that style:
the runtime leaves the style out and says so (``coamd.models.understanding``).
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

RARE_BELOW_CLIPS = 15   # the text-following benchmark reports actions below this separately
FILE_NAME = "vocabulary.json"


def label_side(label: str) -> str:
    """``left``, ``right`` or ``both`` when a content label names a side (``wave-left-hand``), else ``""``."""
    parts = label.split("-")
    for side in ("left", "right", "both"):
        if side in parts:
            return side
    return ""


def build_vocabulary(dataset: str | Path) -> dict:
    """Vocabulary of a processed dataset folder (see the module docstring for the format).
    Raises FileNotFoundError when ``clips.json`` or ``labels.json`` is missing."""
    root = Path(dataset)
    for name in ("clips.json", "labels.json"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found; build the dataset with `make data`")
    clips = json.loads((root / "clips.json").read_text())
    labels = json.loads((root / "labels.json").read_text())
    counts = {k: collections.Counter() for k in ("content", "style")}
    mirrored = {k: collections.Counter() for k in ("content", "style")}
    pairs = collections.Counter()
    for c in clips:
        if c.get("split") != "train":
            continue
        for kind in ("content", "style"):
            mirrored[kind][c[kind]] += 1
            if not c.get("mirrored", False):
                counts[kind][c[kind]] += 1
        if not c.get("mirrored", False):
            pairs[c["content"], c["style"]] += 1

    def entries(kind: str) -> list[dict]:
        names, texts = labels[f"{kind}s"], labels[f"{kind}_texts"]
        other = labels["styles" if kind == "content" else "contents"]

        def pair(n: str, o: str) -> int:
            return int(pairs[(n, o) if kind == "content" else (o, n)])

        return [{"label": n, "description": t, "training_clips": int(counts[kind][n]),
                 "training_clips_with_mirrors": int(mirrored[kind][n]),
                 "side": label_side(n) if kind == "content" else "",
                 "recorded_with": {o: pair(n, o) for o in other if pair(n, o) > 0}}
                for n, t in zip(names, texts)]

    return {"actions": entries("content"), "styles": entries("style"), "rare_below_clips": RARE_BELOW_CLIPS,
            "source": root.name}


def write_vocabulary(dataset: str | Path, out_dir: str | Path) -> Path:
    """Build the vocabulary of ``dataset`` and write ``out_dir/vocabulary.json``; returns the path."""
    out = Path(out_dir) / FILE_NAME
    out.write_text(json.dumps(build_vocabulary(dataset), indent=1) + "\n")
    return out


def load_vocabulary(checkpoint_dir: str | Path) -> dict:
    """The ``vocabulary.json`` stored with a checkpoint. Raises FileNotFoundError naming the file."""
    path = Path(checkpoint_dir) / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; write it with `python -m coamd.data.vocabulary "
                                f"--dataset data/processed --out {Path(checkpoint_dir)}`")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write vocabulary.json (actions, styles, training-clip counts) "
                                "for a checkpoint folder from the processed dataset.")
    p.add_argument("--dataset", default="data/processed", help="processed dataset (default: %(default)s)")
    p.add_argument("--out", required=True, help="checkpoint folder to write vocabulary.json into")
    a = p.parse_args(argv)
    print(write_vocabulary(a.dataset, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
