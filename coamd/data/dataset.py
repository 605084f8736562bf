"""Reading the processed dataset written by :mod:`coamd.data.build`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coamd.data.captions import HELDOUT_FAMILY


@dataclass
class Clip:
    """One processed clip: ``joints`` (T, 21, 3) float32 metres at 20 fps plus its metadata."""

    id: str
    source: str
    content: str
    style: str
    split: str
    mirrored: bool
    captions: list[dict]
    facts: dict
    joints: np.ndarray

    def caption_texts(self, heldout: bool = False) -> list[str]:
        """Caption strings; the held-out paraphrase family only when ``heldout`` is True,
        otherwise only the training families."""
        return [c["text"] for c in self.captions if (c["family"] == HELDOUT_FAMILY) == heldout]


class MotionDataset:
    """The processed dataset in folder ``root``.

    Attributes: ``clips`` (list of :class:`Clip`), ``contents``/``styles`` (class names),
    ``content_texts``/``style_texts`` (label texts), ``stats`` (dict of (K, 3) float32 arrays),
    ``card`` (the dataset card). Raises FileNotFoundError with the build command when missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "motions.npz").exists():
            raise FileNotFoundError(
                f"no processed dataset in {self.root}; build it with "
                f"`coamd data build --source ../shared/data/bandai-namco --out {self.root}`")
        with np.load(self.root / "motions.npz") as z:
            joints, offsets = z["joints"], z["offsets"]
        meta = json.loads((self.root / "clips.json").read_text())
        self.clips = [
            Clip(m["id"], m["source"], m["content"], m["style"], m["split"], m["mirrored"],
                 m["captions"], m["facts"], joints[offsets[i]:offsets[i + 1]])
            for i, m in enumerate(meta)
        ]
        labels = json.loads((self.root / "labels.json").read_text())
        self.contents: list[str] = labels["contents"]
        self.styles: list[str] = labels["styles"]
        self.content_texts: list[str] = labels["content_texts"]
        self.style_texts: list[str] = labels["style_texts"]
        with np.load(self.root / "stats.npz") as z:
            self.stats = {k: z[k] for k in z.files}
        self.card = json.loads((self.root / "dataset_card.json").read_text())

    def split(self, name: str) -> list[Clip]:
        """Clips of split ``name`` (``train``, ``val`` or ``test``). Raises ValueError otherwise."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, val or test")
        return [c for c in self.clips if c.split == name]

    def __len__(self) -> int:
        return len(self.clips)
