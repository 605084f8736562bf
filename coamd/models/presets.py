"""Named model sizes: ``small`` (trains on a 2-core CPU) and ``paper`` (appendix B widths, for a GPU).

``PRESETS[name][model]`` is a dict of overrides of that model's config dataclass; models without
an entry use their defaults. Factories (``autoencoder_small()``, ``build_autoencoder("paper")``)
follow LTH14/mar's ``mar_base``/``mar_large`` style. Other model owners add their own entries
(``"transformer"``, ``"diffusion"``) to the same tables.
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "small": {
        "autoencoder": dict(stream_dim=64, width=128, latent_dim=32, blocks=2, root="filtered",
                            foot_contact_weight=8.0),
        "recognizer": dict(width=96, embed_dim=128, layers=1, heads=4, fused_layers=1, max_frames=128),
        # masked transformer + diffusion MLP (coamd.models.generator.GeneratorConfig)
        "generator": dict(width=128, depth=4, heads=4, mlp_width=192, mlp_depth=3, dropout=0.1),
    },
    "paper": {
        # appendix B: ResNet AE with D = 512, recognizer embedding space 512
        "autoencoder": dict(stream_dim=128, width=512, latent_dim=512, blocks=3, root="filtered",
                            foot_contact_weight=8.0),
        "recognizer": dict(width=512, embed_dim=512, layers=4, heads=8, fused_layers=2),
        # appendix B: 6-layer transformer of width 1024, MLP diffusion head
        "generator": dict(width=1024, depth=6, heads=16, mlp_width=1024, mlp_depth=6, dropout=0.1),
    },
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_overrides(preset: str, model: str) -> dict[str, Any]:
    """The config overrides of ``model`` in ``preset``; ValueError listing the valid presets."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
    return dict(PRESETS[preset].get(model, {}))


def autoencoder_config(preset: str = "small", **overrides: Any):
    """:class:`~coamd.models.autoencoder.AEConfig` of ``preset`` with ``overrides`` (unknown keys
    raise ValueError)."""
    from coamd.models.autoencoder import AEConfig

    return AEConfig().replace(**preset_overrides(preset, "autoencoder")).replace(**overrides)


def recognizer_config(preset: str = "small", **overrides: Any):
    """:class:`~coamd.models.recognizer.RecognizerConfig` of ``preset`` with ``overrides``."""
    from coamd.models.recognizer import RecognizerConfig

    return RecognizerConfig().replace(**preset_overrides(preset, "recognizer")).replace(**overrides)


def build_autoencoder(preset: str = "small", stats: dict | None = None, **overrides: Any):
    """A fresh :class:`~coamd.models.autoencoder.MotionAutoencoder` of ``preset``."""
    from coamd.models.autoencoder import MotionAutoencoder

    return MotionAutoencoder(autoencoder_config(preset, **overrides), stats)


def build_recognizer(preset: str = "small", stats: dict | None = None, **overrides: Any):
    """A fresh :class:`~coamd.models.recognizer.ActionRecognizer` of ``preset``."""
    from coamd.models.recognizer import ActionRecognizer

    return ActionRecognizer(recognizer_config(preset, **overrides), stats)


def autoencoder_small(stats: dict | None = None, **overrides: Any):
    return build_autoencoder("small", stats, **overrides)


def autoencoder_paper(stats: dict | None = None, **overrides: Any):
    return build_autoencoder("paper", stats, **overrides)


def recognizer_small(stats: dict | None = None, **overrides: Any):
    return build_recognizer("small", stats, **overrides)


def recognizer_paper(stats: dict | None = None, **overrides: Any):
    return build_recognizer("paper", stats, **overrides)
