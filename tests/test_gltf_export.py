"""glTF 2.0 binary export (coamd.io.gltf_export) of generated and real motions.

The files are checked by the Khronos glTF validator (npm package ``gltf-validator``, installed by
``make setup-validators``) and read back by a small reader written here, independent of the
exporter (GLB chunks, accessors, node transforms, its own quaternion formula): forward kinematics
of the file's animation must give the streamed positions.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from coamd.io.bvh_export import DATASET_SKELETON
from coamd.io.gltf_export import GLTFExportError, write_glb
from coamd.sampling.skeleton_projection import project_motion
from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "build" / "validators" / "node_modules" / "gltf-validator"
_VALIDATE_JS = """
const fs = require('fs');
const validator = require(process.argv[1]);
validator.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])), {maxIssues: 200, writeTimestamp: false})
  .then((r) => console.log(JSON.stringify(r)))
  .catch((e) => { console.error(String(e)); process.exit(2); });
"""


# Blender (Debian package ``blender``, not installed by ``make setup``: about 190 packages and
# 800 MB): imports a file headless and writes every frame's bone head positions (Blender's Z-up
# world) as JSON. Debian 12's Blender 3.4 add-ons predate Python 3.11 and numpy 1.24; the two
# shims below let its glTF and BVH importers run unchanged.
_BLENDER_PROBE = """
import bpy, json, sys, builtins
import numpy
if not hasattr(numpy, "bool"):
    numpy.bool = bool
_open = builtins.open
def _open_no_u(file, mode="r", *a, **k):
    return _open(file, mode.replace("U", ""), *a, **k)
builtins.open = _open_no_u
argv = sys.argv[sys.argv.index("--") + 1:]
path, kind, out = argv
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps = 20
if kind == "glb":
    bpy.ops.import_scene.gltf(filepath=path)
else:
    bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01, frame_start=0, use_fps_scale=False,
                            axis_forward="-Z", axis_up="Y")
arm = next(o for o in scene.objects if o.type == "ARMATURE")
f0, f1 = [int(round(x)) for x in arm.animation_data.action.frame_range]
frames = []
for f in range(f0, f1 + 1):
    scene.frame_set(f)
    frames.append({b.name: list(arm.matrix_world @ b.head) for b in arm.pose.bones})
json.dump({"range": [f0, f1], "frames": frames}, open(out, "w"))
"""


# ----------------------------------------------------------------------------- independent reader
def read_glb(path) -> tuple[dict, bytes]:
    """(glTF JSON, binary chunk) of a .glb file."""
    data = Path(path).read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert magic == 0x46546C67 and version == 2 and length == len(data)
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A and jlen % 4 == 0
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942
    return gltf, data[28 + jlen: 28 + jlen + blen]


def accessor(gltf: dict, binary: bytes, index: int) -> np.ndarray:
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    assert "byteStride" not in view
    dtype = {5126: "<f4", 5121: "u1", 5123: "<u2", 5125: "<u4"}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    arr = np.frombuffer(binary, dtype=dtype, count=acc["count"] * width, offset=start)
    return arr.reshape(acc["count"], width) if width > 1 else arr


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (x, y, z, w) -> (..., 3, 3), the glTF convention."""
    x, y, z, w = (q[..., i].astype(np.float64) for i in range(4))
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def animated_joint_positions(path) -> tuple[np.ndarray, np.ndarray]:
    """World positions (T, 21, 3) of the joint nodes at every key of the file's animation, and
    the key times (T,)."""
    gltf, binary = read_glb(path)
    nodes = gltf["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    anim = gltf["animations"][0]
    times = None
    T_ = {i: np.asarray(n.get("translation", [0, 0, 0]), np.float64) for i, n in enumerate(nodes)}
    R_ = {i: np.asarray(n.get("rotation", [0, 0, 0, 1]), np.float64) for i, n in enumerate(nodes)}
    tracks_t, tracks_r = {}, {}
    for ch in anim["channels"]:
        s = anim["samplers"][ch["sampler"]]
        assert s.get("interpolation", "LINEAR") == "LINEAR"
        t = accessor(gltf, binary, s["input"])
        times = t if times is None else times
        np.testing.assert_array_equal(t, times)
        out = accessor(gltf, binary, s["output"]).astype(np.float64)
        (tracks_t if ch["target"]["path"] == "translation" else tracks_r)[ch["target"]["node"]] = out
    n = len(times)
    world_R, world_p = {}, {}

    def solve(i):
        if i in world_p:
            return
        tr = tracks_t.get(i, np.broadcast_to(T_[i], (n, 3)))
        rot = quat_matrix(tracks_r.get(i, np.broadcast_to(R_[i], (n, 4))))
        if i in parent:
            solve(parent[i])
            world_p[i] = world_p[parent[i]] + np.einsum("tab,tb->ta", world_R[parent[i]], tr)
            world_R[i] = world_R[parent[i]] @ rot
        else:
            world_p[i], world_R[i] = tr, rot

    names = [nd.get("name") for nd in nodes]
    idx = [names.index(j) for j in JOINT_NAMES]
    for i in idx:
        solve(i)
    return np.stack([world_p[i] for i in idx], axis=1), times


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def streamed(dataset):
    """Two short generated motions streamed chunk by chunk (left-to-right order): (joints,
    rotations, text) each, concatenated from the chunks the sampler released."""
    import torch

    from coamd.runtime import load_engine
    from coamd.sampling import GenerationRequest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eng = load_engine("torch", dataset=dataset.root, guidance=False)
        out = []
        for seed, text in enumerate(("a person waves the right hand", "a person walks forward and turns left")):
            req = GenerationRequest(text, duration_s=3.0, seed=seed, guidance=False, iterations=6, ode_steps=6,
                                    order="left_to_right")
            chunks = list(eng.sampler.stream(req))
            out.append((np.concatenate([c.joints for c in chunks]), np.concatenate([c.rotations for c in chunks]),
                        text))
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def validator():
    """Path of the gltf-validator package (``make setup-validators`` installs it)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the Khronos glTF validator runs on Node.js (apt-get install nodejs npm)")
    if not (VALIDATOR / "package.json").exists():
        proc = subprocess.run(["make", "-s", "setup-validators"], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"make setup-validators failed:\n{proc.stdout}\n{proc.stderr}"
    assert (VALIDATOR / "package.json").exists()
    return VALIDATOR


def validate(validator: Path, path: Path) -> dict:
    proc = subprocess.run(["node", "-e", _VALIDATE_JS, str(validator), str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------- tests
def test_validator_reports_no_errors(streamed, validator, tmp_path):
    joints, rot, text = streamed[0]
    with_mesh = validate(validator, write_glb(tmp_path / "a.glb", joints, rotations=rot, name=text))
    issues = with_mesh["issues"]
    print("\nglTF validator, skinned mesh:", {k: issues[k] for k in ("numErrors", "numWarnings", "numInfos",
                                                                    "numHints")}, issues["messages"][:5])
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    info = with_mesh["info"]
    assert info["animationCount"] == 1 and info["hasSkins"] and info["totalTriangleCount"] > 0
    bare = validate(validator, write_glb(tmp_path / "b.glb", rot, root=joints[:, 0], mesh=False))["issues"]
    assert bare["numErrors"] == 0 and bare["numWarnings"] == 0, bare["messages"]
    # without a mesh the skin is the only thing that mentions the joints: reported as information
    assert {m["code"] for m in bare["messages"]} <= {"UNUSED_OBJECT"}


def test_glb_plays_back_the_stream(streamed, tmp_path):
    """Forward kinematics of the file's nodes at every key equals the streamed positions."""
    worst = 0.0
    for k, (joints, rot, _) in enumerate(streamed):
        path = write_glb(tmp_path / f"{k}.glb", joints, rotations=rot)
        back, times = animated_joint_positions(path)
        assert back.shape == joints.shape
        np.testing.assert_allclose(times, np.arange(len(joints)) / FPS, atol=1e-6)
        err = np.linalg.norm(back - joints, axis=-1)
        worst = max(worst, float(err.max()))
        assert err.max() < 1e-3, (k, err.max())
        # the same from the rotations alone (the stream's rotations + hips track)
        back2, _ = animated_joint_positions(write_glb(tmp_path / f"{k}r.glb", rot, root=joints[:, 0], mesh=False))
        assert np.linalg.norm(back2 - joints, axis=-1).max() < 1e-3
    print(f"\nglb forward kinematics vs stream: max {worst * 1e6:.1f} um")


def test_glb_of_joints_plays_back_their_projection(dataset, tmp_path):
    """Joint positions without rotations are projected onto the skeleton first; a real clip (a
    pose of the skeleton) comes back as it is, but for the projection's slight lag of fast arm
    motions (its low-pass of arm rotations)."""
    clip = next(c for c in dataset.split("test") if c.content == "walk" and not c.mirrored)
    x = clip.joints[:80]
    back, _ = animated_joint_positions(write_glb(tmp_path / "real.glb", x))
    proj, _ = project_motion(x)
    assert np.linalg.norm(back - proj, axis=-1).max() < 1e-3
    err = np.linalg.norm(back - x, axis=-1)
    assert np.median(err) < 1e-4 and err.max() < 0.05


def test_rest_pose_is_a_tpose_and_the_skin_binds_it(streamed, tmp_path):
    joints, rot, _ = streamed[1]
    gltf, binary = read_glb(write_glb(tmp_path / "t.glb", joints, rotations=rot))
    nodes = gltf["nodes"]
    assert [n["name"] for n in nodes[:NUM_JOINTS]] == list(JOINT_NAMES)
    assert all("rotation" not in n for n in nodes)  # rest rotations are the identity
    rest = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        t = np.asarray(nodes[j]["translation"])
        rest[j] = t if PARENTS[j] < 0 else rest[PARENTS[j]] + t
        if j:
            assert abs(np.linalg.norm(t) - DATASET_SKELETON.lengths[j]) < 1e-6  # rest offsets, rotated
    i = {n: k for k, n in enumerate(JOINT_NAMES)}
    # arms straight out along +-X at one height, legs straight down, facing +Z
    for side, sign in (("L", 1), ("R", -1)):
        arm = rest[[i[f"Shoulder_{side}"], i[f"UpperArm_{side}"], i[f"LowerArm_{side}"], i[f"Hand_{side}"]]]
        assert np.ptp(arm[:, 1]) < 1e-6 and np.all(sign * np.diff(arm[:, 0]) > 0)
        leg = rest[[i[f"UpperLeg_{side}"], i[f"LowerLeg_{side}"], i[f"Foot_{side}"]]]
        assert np.ptp(leg[:, 0]) < 1e-6 and np.all(np.diff(leg[:, 1]) < 0)
        assert rest[i[f"Toes_{side}"], 2] > rest[i[f"Foot_{side}"], 2] + 0.05
    assert rest[i["Head"], 1] > rest[i["Neck"], 1] > rest[i["Chest"], 1] > rest[i["Hips"], 1]
    # inverse bind matrices invert the rest pose's joint transforms
    skin = gltf["skins"][0]
    assert skin["joints"] == list(range(NUM_JOINTS))
    ibm = accessor(gltf, binary, skin["inverseBindMatrices"]).reshape(NUM_JOINTS, 4, 4).transpose(0, 2, 1)
    bind = np.tile(np.eye(4), (NUM_JOINTS, 1, 1))
    bind[:, :3, 3] = rest
    np.testing.assert_allclose(ibm @ bind, np.tile(np.eye(4), (NUM_JOINTS, 1, 1)), atol=1e-6)
    # every mesh vertex is bound to one joint with weight 1
    prim = gltf["meshes"][0]["primitives"][0]
    w = accessor(gltf, binary, prim["attributes"]["WEIGHTS_0"])
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert accessor(gltf, binary, prim["attributes"]["JOINTS_0"]).max() < NUM_JOINTS


def test_blender_imports_the_stream(streamed, tmp_path):
    """Blender's own glTF and BVH importers (BVH with the dataset's rest and with a T-pose rest)
    play back the streamed positions."""
    if shutil.which("blender") is None:
        pytest.skip("Blender is not installed (Debian package blender, about 190 packages and 800 MB; "
                    "apt-get install blender python3-numpy to run this check)")
    from coamd.io.bvh_export import write_bvh

    joints, rot, _ = streamed[1]
    probe = tmp_path / "probe.py"
    probe.write_text(_BLENDER_PROBE)
    files = {"glb": write_glb(tmp_path / "m.glb", joints, rotations=rot),
             "bvh": write_bvh(tmp_path / "m.bvh", joints, rotations=rot),
             "tpose.bvh": write_bvh(tmp_path / "t.bvh", joints, rotations=rot, tpose=True)}
    for kind, path in files.items():
        out = tmp_path / f"{kind}.json"
        proc = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(probe), "--",
                               str(path), "glb" if kind == "glb" else "bvh", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        res = json.loads(out.read_text())
        z_up = np.array([[fr[n] for n in JOINT_NAMES] for fr in res["frames"]])
        back = np.stack([z_up[..., 0], z_up[..., 2], -z_up[..., 1]], axis=-1)  # Blender Z-up -> Y-up
        assert back.shape == joints.shape, (kind, back.shape)
        err = np.linalg.norm(back - joints, axis=-1)
        print(f"\nBlender import of {kind}: max {err.max() * 1e6:.1f} um from the stream")
        assert err.max() < 1e-3, (kind, err.max())


def test_bad_input_raises(tmp_path):
    with pytest.raises(GLTFExportError, match="motion must be"):
        write_glb(tmp_path / "x.glb", np.zeros((10, 20, 3)))
    with pytest.raises(GLTFExportError, match="root"):
        write_glb(tmp_path / "x.glb", np.tile([0.0, 0.0, 0.0, 1.0], (5, NUM_JOINTS, 1)))
    with pytest.raises(GLTFExportError, match="unit quaternions"):
        write_glb(tmp_path / "x.glb", np.ones((5, NUM_JOINTS, 4)), root=np.zeros((5, 3)))
    with pytest.raises(GLTFExportError, match="NaN"):
        write_glb(tmp_path / "x.glb", np.full((5, NUM_JOINTS, 3), np.nan))
    with pytest.raises(GLTFExportError, match="fps"):
        write_glb(tmp_path / "x.glb", np.tile([0.0, 0.0, 0.0, 1.0], (5, NUM_JOINTS, 1)), root=np.zeros((5, 3)), fps=0)
    assert not (tmp_path / "x.glb").exists()
