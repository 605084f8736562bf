"""Build the processed dataset from the Bandai Namco BVH recordings (``coamd data build``).

Output folder layout (read back with :class:`coamd.data.dataset.MotionDataset`):

* ``motions.npz``: ``joints`` float32 (N, 21, 3) metres at 20 fps, all clips concatenated;
  ``offsets`` int64 (C + 1,) so clip i is ``joints[offsets[i]:offsets[i+1]]``.
* ``clips.json``: one record per clip (source clip and its mirrored copy): ``id``, ``source``,
  ``set``, ``content``, ``style``, ``mirrored``, ``split``, ``frames``, ``facts``, ``captions``.
* ``labels.json``: ``contents`` and ``styles`` (unified names) with their label texts.
* ``stats.npz``: ``{joint,bone,motion}_{mean,std}`` over the train split.
* ``dataset_card.json``: counts, splits, timings, skipped files and label checks.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from coamd.data.bvh import BVHError, canonical_joint_positions, parse_bvh
from coamd.data.captions import (HELDOUT_FAMILY, captions_for, content_label_text, measure,
                                 style_label_text)
from coamd.data.process import CM_TO_M, canonicalize, mirror
from coamd.data.streams import STREAMS, all_streams
from coamd.skeleton import FPS, JOINT_NAMES

# Names that mean the same style in the two sets are unified to one (set 2's names win).
STYLE_ALIASES = {"masculinity": "masculine", "old": "elderly", "tired": "exhausted"}
# Left/right label swaps applied to mirrored copies.
SIDE_SWAP = {
    "wave-left-hand": "wave-right-hand", "wave-right-hand": "wave-left-hand",
    "walk-turn-left": "walk-turn-right", "walk-turn-right": "walk-turn-left",
    "walk-left": "walk-right", "walk-right": "walk-left",
    "raise-up-left-hand": "raise-up-right-hand", "raise-up-right-hand": "raise-up-left-hand",
}
ARCHIVES = ("Bandai-Namco-Research-Motiondataset-1", "Bandai-Namco-Research-Motiondataset-2")
SPLIT_FRACTIONS = {"test": 0.1, "val": 0.1}


class DataSourceError(RuntimeError):
    """The dataset source folder is missing or holds neither the archives nor the extracted sets."""


@dataclass
class _Item:
    name: str            # file stem, e.g. dataset-2_walk_normal_001
    set_id: int
    text: str


def mirror_label(label: str) -> str:
    """The label of a left/right mirrored clip (unchanged when the label has no side)."""
    return SIDE_SWAP.get(label, label)


def unify_style(name: str) -> str:
    return STYLE_ALIASES.get(name, name)


def _strip_prefix(label: str) -> str:
    return label.split("_", 1)[1] if label.startswith("dataset-") else label


def _set_of(path: str) -> int:
    return 1 if "Motiondataset-1" in path or Path(path).name.startswith("dataset-1_") else 2


def iter_source(source: Path, labels: dict, label_files: dict) -> Iterator[_Item]:
    """Yield BVH items from archives or extracted folders; fills ``labels`` (stem -> json dict)
    and ``label_files`` ((set, kind) -> list of names) as it goes."""
    archives = sorted(source.glob("*.tar.xz"))
    folders = [d for d in (source / a for a in ARCHIVES) if (d / "data").is_dir()]
    if not source.exists():
        raise DataSourceError(f"dataset source {source} does not exist")
    if folders:
        for d in folders:
            set_id = _set_of(d.name)
            for kind in ("content", "style"):
                label_files[(set_id, kind)] = (d / "cfg" / f"{kind}_label.txt").read_text().split()
            for p in sorted((d / "data").glob("*.json")):
                labels[p.stem] = json.loads(p.read_text())
            for p in sorted((d / "data").glob("*.bvh")):
                yield _Item(p.stem, set_id, p.read_text(errors="replace"))
        return
    if not archives:
        raise DataSourceError(
            f"no dataset in {source}: expected {ARCHIVES[0]}.tar.xz / {ARCHIVES[1]}.tar.xz "
            "or their extracted folders")
    for arc in archives:
        with tarfile.open(arc, "r:xz") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                p = Path(m.name)
                set_id = _set_of(m.name)
                if p.suffix == ".txt" and p.parent.name == "cfg":
                    kind = "content" if "content" in p.name else "style"
                    label_files[(set_id, kind)] = tf.extractfile(m).read().decode().split()
                elif p.suffix == ".json" and p.parent.name == "data":
                    labels[p.stem] = json.loads(tf.extractfile(m).read())
                elif p.suffix == ".bvh":
                    yield _Item(p.stem, set_id, tf.extractfile(m).read().decode(errors="replace"))


def bvh_text_to_canonical(text: str, name: str = "<bvh>") -> tuple[np.ndarray, float]:
    """BVH text -> canonical clip (T, 21, 3) float32, metres, 20 fps; also the source fps.

    Raises BVHError on malformed input.
    """
    bvh = parse_bvh(text, name)
    src_fps = round(bvh.fps, 3)
    bvh.frame_time = 1.0 / src_fps
    joints = canonical_joint_positions(bvh, fps=FPS) * CM_TO_M
    return canonicalize(joints).astype(np.float32), src_fps


def _process(item: _Item):
    try:
        joints, _ = bvh_text_to_canonical(item.text, item.name)
        if joints.shape[0] < 2:
            raise BVHError(f"{item.name}: fewer than 2 frames after resampling")
        mirrored = mirror(joints)
        return item.name, item.set_id, joints, mirrored, measure(joints), measure(mirrored), None
    except (BVHError, ValueError) as exc:
        return item.name, item.set_id, None, None, None, None, str(exc)


def assign_splits(names: list[tuple[int, str, str]]) -> dict[str, str]:
    """Deterministic split by source clip, stratified per (set, content).

    Args: (set, content, name) per source clip. Within each group, clips are ordered by a hash
    of their name; the first 10 % (at least one when the group has 3 or more clips) go to test,
    the next 10 % to val, the rest to train. Mirrored copies follow their source clip.
    """
    groups: dict[tuple[int, str], list[str]] = {}
    for set_id, content, name in names:
        groups.setdefault((set_id, content), []).append(name)
    split: dict[str, str] = {}
    for members in groups.values():
        members.sort(key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        n = len(members)
        n_test = max(1, round(n * SPLIT_FRACTIONS["test"])) if n >= 3 else 0
        n_val = max(1, round(n * SPLIT_FRACTIONS["val"])) if n >= 3 else 0
        for i, name in enumerate(members):
            split[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def build_dataset(source: str | Path, out: str | Path, workers: int | None = None,
                  limit: int | None = None, progress: bool = True) -> dict:
    """Build the processed dataset (see module docstring). Returns the dataset card dict.

    Args:
        source: folder with the two ``.tar.xz`` archives or the extracted dataset folders.
        out: output folder (created).
        workers: parser processes (default: CPU count).
        limit: read at most this many BVH files (for quick tests); ``None`` reads all.
    Raises:
        DataSourceError: the source is missing or holds no dataset.
    """
    t0 = time.time()
    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataSourceError(f"dataset source {source} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    labels: dict = {}
    label_files: dict = {}
    results = []
    skipped: list[dict] = []
    workers = workers or mp.cpu_count()

    def items():
        for k, it in enumerate(iter_source(source, labels, label_files)):
            if limit is not None and k >= limit:
                return
            yield it

    total = limit or 3076
    with mp.get_context("fork").Pool(workers) as pool, \
            tqdm(total=total, desc="building dataset", unit="clip", disable=not progress) as bar:
        for res in pool.imap(_process, items(), chunksize=4):
            bar.update(1)
            if res[-1] is not None:
                skipped.append({"file": res[0] + ".bvh", "error": res[-1]})
                bar.write(f"skipped {res[0]}.bvh: {res[-1]}")
            else:
                results.append(res)
    if not results:
        raise DataSourceError(f"no readable BVH clips in {source}")

    def label_of(name: str, set_id: int, kind: str) -> str:
        raw = label_files[(set_id, kind)][labels[name][kind]]
        name_ = _strip_prefix(raw)
        return unify_style(name_) if kind == "style" else name_

    ok = []
    for r in results:
        name, set_id = r[0], r[1]
        if name not in labels:
            skipped.append({"file": name + ".bvh", "error": "no label .json beside the BVH"})
            continue
        ok.append((r, label_of(name, set_id, "content"), label_of(name, set_id, "style")))
    split = assign_splits([(r[1], c, r[0]) for r, c, _ in ok])

    clips, arrays, checks = [], [], []
    for (name, set_id, joints, mirrored, facts, facts_m, _), content, style in sorted(ok, key=lambda x: x[0][0]):
        for is_mirror, arr, f in ((False, joints, facts), (True, mirrored, facts_m)):
            c = mirror_label(content) if is_mirror else content
            caps = captions_for(c, style, f)
            clips.append({
                "id": name + ("_mirror" if is_mirror else ""), "source": name, "set": set_id,
                "content": c, "style": style, "mirrored": is_mirror, "split": split[name],
                "frames": int(arr.shape[0]), "facts": f.to_dict(), "captions": caps,
            })
            arrays.append(arr)
        if content.startswith("walk-turn-") and abs(facts.turn_deg) >= 45:
            measured = "left" if facts.turn_deg > 0 else "right"
            if not content.endswith(measured):
                checks.append({"clip": name, "label": content, "measured_turn_deg": round(facts.turn_deg, 1)})

    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([a.shape[0] for a in arrays])
    joints_all = np.concatenate(arrays).astype(np.float32)
    np.savez(out / "motions.npz", joints=joints_all, offsets=offsets)
    (out / "clips.json").write_text(json.dumps(clips))

    contents = sorted({c["content"] for c in clips})
    styles = sorted({c["style"] for c in clips})
    (out / "labels.json").write_text(json.dumps({
        "contents": contents, "styles": styles,
        "content_texts": [content_label_text(c) for c in contents],
        "style_texts": [style_label_text(s) for s in styles],
    }, indent=1))

    train = [a for a, c in zip(arrays, clips) if c["split"] == "train"]
    stats = {}
    for k, v in all_streams(np.concatenate(train)[None]).items():
        v = v[0]
        stats[f"{k}_mean"] = v.mean(axis=0).astype(np.float32)
        stats[f"{k}_std"] = np.maximum(v.std(axis=0), 1e-3).astype(np.float32)
    np.savez(out / "stats.npz", **stats)

    split_counts = {s: sum(1 for c in clips if c["split"] == s) for s in ("train", "val", "test")}
    card = {
        "name": "Bandai Namco Research Motion Dataset (processed)",
        "license": "CC BY-NC 4.0",
        "citation": "Kobayashi et al., Motion Capture Dataset for Practical Use of AI-based Motion "
                    "Editing and Stylization, arXiv:2306.08861, 2023",
        "clips": len(results) + len(skipped),
        "clips_read": len(results),
        "clips_skipped": len(skipped),
        "skipped": skipped,
        "clips_with_mirrors": len(clips),
        "frames": int(joints_all.shape[0]),
        "fps": FPS,
        "joints": list(JOINT_NAMES),
        "splits": split_counts,
        "split_unit": "source clip (a mirrored copy stays with its source)",
        "contents": contents,
        "styles": styles,
        "style_aliases": STYLE_ALIASES,
        "captions": sum(len(c["captions"]) for c in clips),
        "caption_families": sorted({cap["family"] for c in clips for cap in c["captions"]}),
        "heldout_caption_family": HELDOUT_FAMILY,
        "label_checks": checks,
        "streams": list(STREAMS),
        "build_seconds": round(time.time() - t0, 1),
    }
    (out / "dataset_card.json").write_text(json.dumps(card, indent=1))
    return card
