"""Unguided generation and serving on ONNX Runtime import no torch and no training code.

Once the shipped checkpoint's graphs are in the export cache (the session fixture exports them
if needed, like the first ``coamd generate`` does), a fresh interpreter generating unguided with the
ONNX Runtime backend, a server engine loaded without the guidance sidecar, and a real
``coamd serve --no-guidance`` process never load torch. The export cache is keyed by the
checkpoint files' hashes, so deciding a hit needs no torch either.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coamd.export import manifest as MF
from coamd.paths import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
if not all((DEFAULT_CHECKPOINT / f).is_file() for f in ("autoencoder.pt", "recognizer.pt", "generator.pt")):
    pytest.skip(f"the shipped checkpoint in {DEFAULT_CHECKPOINT} is incomplete", allow_module_level=True)

_REPORT = r"""
import json, sys
mods = sorted(sys.modules)
print("REPORT " + json.dumps({
    "torch": [m for m in mods if m == "torch" or m.startswith("torch.")][:5],
    "train": [m for m in mods if m == "coamd.train" or m.startswith("coamd.train.")],
    # the bundle (paths) and the NumPy text-understanding stage every request goes through are
    # runtime code; every other coamd.models module is PyTorch model code
    "models": [m for m in mods if m.startswith("coamd.models.")
               and m not in ("coamd.models.bundle", "coamd.models.understanding")],
}))
"""


@pytest.fixture(scope="module")
def shipped_export():
    """The export folder of the shipped checkpoint in the user's export cache (exported on a miss)."""
    from coamd.export.cache import ensure_export

    return ensure_export(progress=False)


def _run(code: str, timeout: float = 300) -> dict:
    out = subprocess.run([sys.executable, "-c", code + _REPORT], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("REPORT ")][-1]
    return {**json.loads(line[len("REPORT "):]), "stdout": out.stdout}


def test_cache_key_is_file_hashes(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "autoencoder.pt").write_bytes(b"ae weights")
        (d / "generator.pt").write_bytes(b"generator weights")
    (b / "recognizer.pt").write_bytes(b"not part of the graphs")
    key = MF.checkpoint_key(a, "1.0")
    assert key == MF.checkpoint_key(b, "1.0")          # where it lives and unrelated files do not matter
    assert MF.checkpoint_key(a, "1.1") != key          # text-encoder package version
    monkeypatch.setattr(MF, "EXPORTER_VERSION", MF.EXPORTER_VERSION + 1)
    assert MF.checkpoint_key(a, "1.0") != key          # exporter version
    monkeypatch.undo()
    (b / "generator.pt").write_bytes(b"generator weights, retrained")
    assert MF.checkpoint_key(b, "1.0") != key          # file bytes
    (b / "generator.pt").unlink()
    with pytest.raises(FileNotFoundError, match="generator.pt"):
        MF.checkpoint_key(b, "1.0")


def test_shipped_export_is_keyed_by_its_files(shipped_export):
    from coamd.export.cache import cache_key

    man = MF.read_manifest(shipped_export)
    assert shipped_export.name == cache_key(checkpoint=DEFAULT_CHECKPOINT)
    assert man["cache_key"] == shipped_export.name
    assert man["checkpoint_files"]["generator.pt"] == MF.file_sha256(DEFAULT_CHECKPOINT / "generator.pt")


def test_runtime_import_and_unguided_generation_need_no_torch(shipped_export, tmp_path):
    out = tmp_path / "walk.npy"
    r = _run(f"""
import sys
import coamd.runtime
assert "torch" not in sys.modules, "import coamd.runtime imported torch"
from coamd.runtime import load_engine
from coamd.sampling.sampler import GenerationRequest
eng = load_engine("onnxruntime", guidance=False)
assert eng.backend_name.startswith("onnxruntime"), eng.backend_name
j = eng.sampler.sample(GenerationRequest(text="a person walks forward", duration_s=2.0, seed=0, guidance=False,
                                         iterations=2, ode_steps=2))
assert j.shape == (40, 21, 3), j.shape
import numpy as np
np.save({str(out)!r}, j)
""")
    assert r["torch"] == [] and r["train"] == [] and r["models"] == [], r
    assert np.isfinite(np.load(out)).all()


def test_coamd_generate_no_guidance_needs_no_torch(shipped_export, tmp_path):
    out = tmp_path / "wave.npz"
    r = _run(f"""
from coamd.cli import main
rc = main(["generate", "a person waves the right hand", "--duration", "2", "--no-guidance",
           "--iterations", "2", "--ode-steps", "2", "--out", {str(out)!r}])
assert rc == 0, rc
""")
    assert r["torch"] == [], r
    # the argument parser imports the trainer registry (names and help texts); no trainer, no train.common
    assert [m for m in r["train"] if m != "coamd.train"] == [], r
    assert "onnxruntime" in r["stdout"] and out.exists()


def test_server_engine_loads_unguided_without_torch(shipped_export):
    r = _run("""
import sys
import coamd.server.app  # the gRPC server module itself
from coamd.server.engine import load_server_engine
from coamd.sampling.sampler import GenerationRequest
eng = load_server_engine("onnxruntime", guidance=False)
d = eng.defaults()
assert d.guidance is False and d.max_duration_s > 0, d
j = eng.runtime.sampler.sample(GenerationRequest(text="a person kicks", duration_s=2.0, seed=1, guidance=False,
                                                 iterations=2, ode_steps=2))
assert "torch" not in sys.modules, "unguided generation on the server engine imported torch"
# recognition loads the PyTorch recognizer on first use (documented), and works
content, style = eng.recognize(j, 2)
assert len(content) == 2 and len(style) == 2 and "torch" in sys.modules
print("recognized", content[0][0])
""")
    assert r["train"] == [], r
    assert "recognized" in r["stdout"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc to inspect the server process")
def test_coamd_serve_no_guidance_never_maps_torch(shipped_export, tmp_path):
    from coamd.client import MotionClient
    from coamd.client.process import ServerProcess

    with ServerProcess(["--backend", "onnxruntime", "--no-guidance"], log_path=tmp_path / "server.log",
                       timeout_s=120, cwd=ROOT) as srv:
        with MotionClient(srv.target) as client:
            res = client.generate("a person walks forward", duration_s=2.0, seed=0, iterations=2, ode_steps=2)
        maps = Path(f"/proc/{srv.proc.pid}/maps").read_text()
    assert res.joints.shape == (40, 21, 3)
    assert res.summary["guidance_applied"] is False
    assert "libtorch" not in maps and "/torch/" not in maps, "the server process loaded torch"
    assert "torch not loaded" in (tmp_path / "server.log").read_text()
