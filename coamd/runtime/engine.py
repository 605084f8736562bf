"""The inference engine: a sampler on one backend plus the recognizer for understanding.

``Engine`` is what the CLI and the server use: ``sampler`` (a
:class:`~coamd.sampling.sampler.MaskedARSampler`), ``backend_name`` (what really runs),
``recognize`` (top-k content and style of a motion) and ``retrieve`` (closest test-split motions to
a text), plus ``generate`` as a one-call convenience.

Importing this module imports no torch. An engine built from a checkpoint folder alone (a
:class:`BundleRef`, as :func:`coamd.runtime.load_engine` does for the ONNX Runtime backend
without guidance) generates from the exported graphs; ``recognize``, ``retrieve`` and
``embed_motion`` use the PyTorch recognizer, so their first call loads the checkpoint (torch,
about 1-2 s) and later calls reuse it.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from coamd.paths import DEFAULT_DATASET
from coamd.sampling.sampler import GenerationRequest, MaskedARSampler
from coamd.skeleton import check_joints

__all__ = ["BundleRef", "Engine", "Match", "DEFAULT_DATASET", "TEXT_CONDITIONINGS", "DEFAULT_TEXT_CONDITIONING"]

TEXT_CONDITIONINGS = ("understood", "raw")
DEFAULT_TEXT_CONDITIONING = "understood"
_UNSET = object()


@dataclass
class Match:
    """One ranked answer: ``label`` (class name or clip id), cosine ``score``, and for retrieval
    the clip's ``content``, ``style`` and ``caption``."""

    label: str
    score: float
    content: str | None = None
    style: str | None = None
    caption: str | None = None


class BundleRef:
    """The models of a checkpoint folder, loaded on first use (that imports torch).

    path: the checkpoint folder; its existence and ``autoencoder.pt`` are checked at once
    (FileNotFoundError), without torch. torch_threads: intra-op threads torch gets when this
    loads it, or a function called then to choose them (so a measure of the machine is only
    taken when torch is needed); None leaves torch's setting. :meth:`get` loads and returns the
    :class:`~coamd.models.bundle.ModelBundle` (once, thread-safe); every other attribute is the
    loaded bundle's, so a ``BundleRef`` stands in for a ``ModelBundle`` where models are needed.
    """

    def __init__(self, path: str | Path, torch_threads: int | Callable[[], int] | None = None):
        from coamd.models.bundle import checkpoint_folder

        self.path = checkpoint_folder(path)
        self.torch_threads = torch_threads
        self._bundle = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the models are loaded (torch imported by this reference)."""
        return self._bundle is not None

    def get(self):
        """The loaded ``ModelBundle`` (loads it on the first call)."""
        with self._lock:
            if self._bundle is None:
                import torch

                n = self.torch_threads() if callable(self.torch_threads) else self.torch_threads
                if n:
                    torch.set_num_threads(int(n))
                from coamd.models.bundle import load_bundle

                self._bundle = load_bundle(self.path)
        return self._bundle

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("path", "torch_threads"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"BundleRef({self.path}, loaded={self.loaded})"


class Engine:
    """Generation, recognition and retrieval on one backend.

    bundle: ``ModelBundle`` (``coamd.models.bundle.load_bundle``) or a :class:`BundleRef` (loaded
    only when recognition, retrieval or ``bundle`` itself is used); backend: a
    :class:`~coamd.sampling.backend.Backend`; guide: the recognizer guidance or None;
    dataset: processed dataset folder used by :meth:`retrieve`.
    """

    def __init__(self, bundle, backend, guide=None, dataset: str | Path = DEFAULT_DATASET):
        self._bundle = bundle
        self.backend = backend
        self.guide = guide
        self.sampler = MaskedARSampler(backend, guide)
        self.dataset = Path(dataset)
        self._labels: dict | None = None
        self._retrieval: dict | None = None
        self._understanding = _UNSET
        self._lock = threading.Lock()

    @property
    def bundle(self):
        """The ``ModelBundle``; loaded on first access when the engine holds a :class:`BundleRef`."""
        b = self._bundle
        return b.get() if isinstance(b, BundleRef) else b

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint folder of the models (None for a bundle that exists only in memory)."""
        p = getattr(self._bundle, "path", None)
        return Path(p) if p is not None else None

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # ------------------------------------------------------------------ generation
    def generate(self, text: str, duration_s: float = 4.0, seed: int = 0,
                 text_conditioning: str = DEFAULT_TEXT_CONDITIONING, **options) -> np.ndarray:
        """Joints (T, 21, 3) float32 metres at 20 fps for ``text``; ``text_conditioning``: see
        :meth:`understand`; ``options`` are the other :class:`GenerationRequest` fields.
        Raises ValueError for a bad request."""
        _, conditioned = self.understand(text, text_conditioning)
        return self.sampler.sample(GenerationRequest(text=conditioned, duration_s=duration_s, seed=seed, **options))

    # ------------------------------------------------------------------ text understanding (NumPy)
    def text_understanding(self):
        """The checkpoint's text-understanding stage (:class:`coamd.models.understanding.TextUnderstanding`
        from ``understanding.npz``), or None when the checkpoint folder has none. Loaded once."""
        with self._lock:
            if self._understanding is _UNSET:
                from coamd.models.understanding import TextUnderstanding
                from coamd.paths import DEFAULT_CHECKPOINT

                path = (self.checkpoint or DEFAULT_CHECKPOINT) / "understanding.npz"
                self._understanding = TextUnderstanding.load(path) if path.is_file() else None
            return self._understanding

    def understand(self, text: str, text_conditioning: str = DEFAULT_TEXT_CONDITIONING):
        """How ``text`` is understood and what the generator is conditioned on.

        Returns ``(interpretation, conditioned_text)``: the :class:`~coamd.models.understanding.Interpretation`
        (content/style/side probabilities, out-of-vocabulary flag and note; None without a
        text-understanding stage) and the sentence to generate from. ``text_conditioning``:
        ``"understood"`` (the understood action and style in the training captions' phrasing,
        ``"an old lady jogs down the road"`` -> ``"An elderly person runs."``:
        :func:`coamd.models.understanding.rewrite_for_generator`, the variant that measured best
        on the dev split of ``benchmarks/data``; keeping the request's own words after it measured
        worse) or ``"raw"`` (the text as given). Costs one text encoding (cached) and a (384 x 42)
        matrix product, plus one encoding of the conditioned sentence (cached: there are at most
        24 x 17 of them, 185 distinct for the shipped stage). Raises ValueError for empty text or
        an unknown mode.
        """
        if text_conditioning not in TEXT_CONDITIONINGS:
            raise ValueError(f"text_conditioning must be one of {', '.join(TEXT_CONDITIONINGS)}, "
                             f"got {text_conditioning!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        model = self.text_understanding()
        if model is None:
            return None, text
        emb = np.asarray(self.sampler.encode_text([text]), np.float32)[0]
        it = model.interpret(emb, [text])[0]
        if text_conditioning == "raw":
            return it, text
        return it, model.canonical_text(it)   # = rewrite_for_generator(text), without interpreting twice

    # ------------------------------------------------------------------ understanding (PyTorch recognizer)
    def _label_embeddings(self) -> dict:
        """{"content"|"style": (names, (N, E) torch text embeddings of the label texts)}."""
        if self._labels is None:
            import torch

            bundle = self.bundle
            lab = bundle.labels
            rec, te = bundle.recognizer, bundle.text_encoder
            out = {}
            with torch.inference_mode():
                for kind in ("content", "style"):
                    names, texts = list(lab[f"{kind}s"]), list(lab[f"{kind}_texts"])
                    out[kind] = (names, rec.embed_text(te.encode(texts).float()))
            self._labels = out
        return self._labels

    def embed_motion(self, joints: np.ndarray) -> dict:
        """Recognizer embeddings {fused, joint, bone, motion}, torch tensors (1, E), of one motion
        (T >= 2, 21, 3) metres at 20 fps. Raises ValueError on a bad shape or non-finite values."""
        import torch

        j = torch.from_numpy(check_joints(joints, min_frames=2))[None]
        with torch.inference_mode():
            return self.bundle.recognizer.embed_motion(j, torch.ones(j.shape[:2], dtype=torch.bool))

    def recognize(self, joints: np.ndarray, top_k: int = 3) -> dict[str, list[Match]]:
        """Top-k content and style of a motion (T, 21, 3) metres at 20 fps by cosine similarity of
        the fused motion embedding to the label-text embeddings (paper section 3.1).
        Returns {"content": [Match...], "style": [Match...]}. Raises ValueError on bad input."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        j = check_joints(joints, min_frames=2)
        import torch

        with torch.inference_mode():
            e = self.embed_motion(j)["fused"]
            out = {}
            for kind, (names, emb) in self._label_embeddings().items():
                sims = torch.nn.functional.cosine_similarity(e, emb, dim=-1)
                idx = torch.argsort(sims, descending=True)[:top_k]
                out[kind] = [Match(names[i], float(sims[i])) for i in idx.tolist()]
        return out

    def _recognizer_key(self) -> str:
        """Hash of the recognizer weights: of ``recognizer.pt``'s bytes when the checkpoint folder
        has it, else of the loaded weights."""
        ckpt = self.checkpoint
        if ckpt is not None and (ckpt / "recognizer.pt").is_file():
            from coamd.export.manifest import file_sha256

            return file_sha256(ckpt / "recognizer.pt")[:16]
        h = hashlib.sha256()
        for k, v in sorted(self.bundle.recognizer.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def _retrieval_index(self) -> dict:
        """Fused embeddings of the test split (cached next to the dataset, keyed by the weights)."""
        if self._retrieval is not None:
            return self._retrieval
        cache = self.dataset / f"retrieval_{self._recognizer_key()}.npz"
        if cache.exists():
            with np.load(cache) as f:
                self._retrieval = {"emb": f["emb"], "ids": list(f["ids"]), "content": list(f["content"]),
                                   "style": list(f["style"]), "caption": list(f["caption"])}
            return self._retrieval
        from coamd.data.dataset import MotionDataset

        ds = MotionDataset(self.dataset)
        clips = ds.split("test")
        embs = [self.embed_motion(c.joints)["fused"][0].numpy() for c in clips]
        idx = {"emb": np.stack(embs).astype(np.float32), "ids": [c.id for c in clips],
               "content": [c.content for c in clips], "style": [c.style for c in clips],
               "caption": [(c.caption_texts() or [""])[0] for c in clips]}
        np.savez(cache, **{k: np.asarray(v) for k, v in idx.items()})
        self._retrieval = idx
        return idx

    def retrieve(self, text: str, top_k: int = 5) -> list[Match]:
        """The ``top_k`` test-split motions closest to ``text`` (cosine of the recognizer's text and
        fused motion embeddings). The first call embeds the test split (cached on disk).
        Raises ValueError for empty text or top_k < 1; FileNotFoundError without the dataset."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        idx = self._retrieval_index()
        import torch

        bundle = self.bundle
        with torch.inference_mode():
            c = bundle.recognizer.embed_text(bundle.text_encoder.encode([text]).float())[0].numpy()
        emb = idx["emb"]
        sims = emb @ c / (np.linalg.norm(emb, axis=1) * np.linalg.norm(c) + 1e-12)
        order = np.argsort(-sims)[:top_k]
        return [Match(str(idx["ids"][i]), float(sims[i]), str(idx["content"][i]), str(idx["style"][i]),
                      str(idx["caption"][i])) for i in order]
