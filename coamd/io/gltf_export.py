"""glTF 2.0 binary (``.glb``) export of a motion: a skinned skeleton with one animation.

The file (glTF 2.0, validated by the Khronos glTF validator in ``tests/test_gltf_export.py``):

* one node per joint (the 21 canonical joints of :mod:`coamd.skeleton`, named as there, in that
  order: node j is joint j), parented as the skeleton; a T-pose rest: with no animation every
  node's rotation is the identity and the body stands in a T-pose facing +Z
  (:func:`coamd.io.bvh_export.tpose_rest_rotations`), each node's translation is its rest offset
  (:func:`coamd.io.bvh_export.rest_offsets`, rotated into the T-pose), ``Hips`` at the motion's
  first hips position;
* one animation: a rotation channel for every joint and a translation channel for ``Hips``, one
  key per frame at ``t = i / fps`` seconds (20 fps by default), ``LINEAR`` interpolation
  (spherical for rotations; the quaternions are sign-continuous so each key-to-key step takes
  the short way);
* a skin over the 21 joints with inverse bind matrices of the T-pose, and (``mesh=True``) a
  simple mesh bound to it: one box per bone, rigidly weighted to the joint that turns it;
* glTF's frame is the project's: metres, right-handed, +Y up, facing +Z.

Forward kinematics of the file's node transforms gives back the motion's joint positions (float32
rounding; measured in the tests). With rotations from the runtime (``FrameChunk.rotations``) those
are the streamed positions; with joint positions only, the motion is first projected onto the
skeleton (:func:`coamd.sampling.skeleton_projection.project_motion`), and the file holds that
projection. The container is written here with numpy and ``json`` (binary chunk layout of the
glTF 2.0 specification, section 4.4).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from coamd.io.bvh_export import (CHILDREN, DATASET_SKELETON, END_SITES_CM, M_TO_CM, BVHSkeleton,
                                 rest_frame_change, tpose_rest_rotations)
from coamd.io.rotations import matrix_to_quat, quat_to_matrix
from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS

_FLOAT, _UBYTE, _USHORT = 5126, 5121, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_GLB_MAGIC, _GLB_VERSION = 0x46546C67, 2
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942
BONE_WIDTH_M = 0.05
"""Width of the boxes of the optional mesh (metres)."""


class GLTFExportError(ValueError):
    """A motion that cannot be exported (bad shapes, NaN, non-positive fps)."""


def _motion_rotations(motion: np.ndarray, root: np.ndarray | None, rotations: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(local quaternions (T, 21, 4) float64, hips positions (T, 3) float64) of the arguments of
    :func:`write_glb`."""
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != NUM_JOINTS or m.shape[2] not in (3, 4) or m.shape[0] < 1:
        raise GLTFExportError(f"motion must be joints (T, {NUM_JOINTS}, 3) or rotations (T, {NUM_JOINTS}, 4) "
                              f"with T >= 1, got {m.shape}")
    if not np.isfinite(m).all():
        raise GLTFExportError("motion contains NaN or infinite values")
    T = m.shape[0]
    if m.shape[2] == 4:
        if rotations is not None:
            raise GLTFExportError("give rotations either as the motion or as rotations=, not both")
        q = m
        if root is None:
            raise GLTFExportError("rotations need root= (T, 3), the hips positions in metres")
        hips = np.asarray(root, dtype=np.float64)
    else:
        hips = m[:, 0] if root is None else np.asarray(root, dtype=np.float64)
        if rotations is None:
            from coamd.sampling.skeleton_projection import project_motion

            try:
                _, q = project_motion(m)
            except ValueError as exc:
                raise GLTFExportError(str(exc)) from exc
            q = np.asarray(q, dtype=np.float64)
        else:
            q = np.asarray(rotations, dtype=np.float64)
    if q.shape != (T, NUM_JOINTS, 4) or not np.isfinite(q).all():
        raise GLTFExportError(f"rotations must be finite (T, {NUM_JOINTS}, 4) quaternions, got {q.shape}")
    if hips.shape != (T, 3) or not np.isfinite(hips).all():
        raise GLTFExportError(f"root must be finite (T, 3) hips positions, got {hips.shape}")
    norm = np.linalg.norm(q, axis=-1)
    if np.abs(norm - 1.0).max() > 1e-3:
        raise GLTFExportError("rotations must be unit quaternions (x, y, z, w)")
    return q / norm[..., None], hips


def _continuous(q: np.ndarray) -> np.ndarray:
    """Flip quaternion signs (T, J, 4) so consecutive keys have a non-negative dot product."""
    q = q.copy()
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t, flip] *= -1
    return q


def _box(a: np.ndarray, b: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box of square section ``width`` around the segment a -> b (both (3,), metres): 24
    vertices (4 per face, flat normals) and 36 indices, counter-clockwise seen from outside.
    Returns (positions (24, 3), normals (24, 3), indices (36,))."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    u = axis / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    helper = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v)
    w = np.cross(u, v)
    h = width / 2.0
    corners = np.array([a + s * length * u + sv * h * v + sw * h * w
                        for s in (0, 1) for sv in (-1, 1) for sw in (-1, 1)])
    centre = a + 0.5 * length * u
    faces = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))
    pos, nrm, idx = [], [], []
    for f in faces:
        quad = corners[list(f)]
        n = np.cross(quad[1] - quad[0], quad[2] - quad[0])
        n /= np.linalg.norm(n)
        if np.dot(n, quad.mean(0) - centre) < 0:  # wind counter-clockwise seen from outside
            quad, n = quad[::-1], -n
        base = len(pos)
        pos.extend(quad)
        nrm.extend([n] * 4)
        idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return np.array(pos), np.array(nrm), np.array(idx)


class _Buffer:
    """The binary chunk: bufferViews (4-byte aligned) and accessors, one accessor per view."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None,
            bounds: bool = False) -> int:
        dtype = {_FLOAT: "<f4", _UBYTE: "u1", _USHORT: "<u2"}[component]
        arr = np.ascontiguousarray(array, dtype=dtype)
        while len(self.data) % 4:
            self.data.append(0)
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": arr.nbytes}
        if target is not None:
            view["target"] = target
        self.data += arr.tobytes()
        self.views.append(view)
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[kind]
        acc = {"bufferView": len(self.views) - 1, "componentType": component,
               "count": int(arr.size // width), "type": kind}
        if bounds:
            flat = arr.reshape(-1, width)
            acc["min"] = [float(x) if component == _FLOAT else int(x) for x in flat.min(0)]
            acc["max"] = [float(x) if component == _FLOAT else int(x) for x in flat.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def glb_bytes(motion: np.ndarray, root: np.ndarray | None = None, rotations: np.ndarray | None = None,
              fps: float = FPS, skeleton: BVHSkeleton = DATASET_SKELETON, mesh: bool = True,
              name: str = "motion") -> bytes:
    """The ``.glb`` file's bytes (see :func:`write_glb` for the arguments)."""
    if not np.isfinite(fps) or fps <= 0:
        raise GLTFExportError(f"fps must be positive, got {fps}")
    q, hips = _motion_rotations(motion, root, rotations)
    T = len(q)
    rest = tpose_rest_rotations()
    local = rest_frame_change(quat_to_matrix(q), rest)
    keys = _continuous(matrix_to_quat(local))                  # (T, 21, 4) x, y, z, w
    offsets = np.zeros((NUM_JOINTS, 3))                        # node translations (parent's frame)
    for j in range(1, NUM_JOINTS):
        offsets[j] = rest[PARENTS[j]] @ skeleton.offsets[j]
    offsets[0] = hips[0]
    bind = np.zeros((NUM_JOINTS, 3))                           # T-pose joint positions (world)
    bind[0] = offsets[0]
    for j in range(1, NUM_JOINTS):
        bind[j] = bind[PARENTS[j]] + offsets[j]

    buf = _Buffer()
    nodes = []
    for j, jname in enumerate(JOINT_NAMES):
        node = {"name": jname, "translation": [float(x) for x in offsets[j]]}
        if CHILDREN[j]:
            node["children"] = list(CHILDREN[j])
        nodes.append(node)
    ibm = np.tile(np.eye(4), (NUM_JOINTS, 1, 1))
    ibm[:, :3, 3] = -bind
    ibm_acc = buf.add(np.transpose(ibm, (0, 2, 1)).reshape(NUM_JOINTS, 16), _FLOAT, "MAT4")  # column-major
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "coamd.io.gltf_export"},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0]}],
        "nodes": nodes,
        "skins": [{"name": "skeleton", "joints": list(range(NUM_JOINTS)), "skeleton": 0,
                   "inverseBindMatrices": ibm_acc}],
    }
    if mesh:
        pos, nrm, idx, jnt = [], [], [], []
        ends = {n: rest[JOINT_NAMES.index(n)] @ (np.asarray(v) / M_TO_CM) for n, v in END_SITES_CM.items()}
        segments = [(PARENTS[c], bind[PARENTS[c]], bind[c]) for c in range(1, NUM_JOINTS)]
        segments += [(JOINT_NAMES.index(n), bind[JOINT_NAMES.index(n)], bind[JOINT_NAMES.index(n)] + e)
                     for n, e in ends.items()]
        for joint, a, b in segments:
            p, n, i = _box(a, b, BONE_WIDTH_M)
            idx.append(i + sum(len(x) for x in pos))
            pos.append(p)
            nrm.append(n)
            jnt.append(np.full(len(p), joint))
        pos, nrm, idx, jnt = (np.concatenate(x) for x in (pos, nrm, idx, jnt))
        joints0 = np.zeros((len(pos), 4), np.uint8)
        joints0[:, 0] = jnt
        weights0 = np.zeros((len(pos), 4), np.float32)
        weights0[:, 0] = 1.0
        attrs = {"POSITION": buf.add(pos, _FLOAT, "VEC3", _ARRAY_BUFFER, bounds=True),
                 "NORMAL": buf.add(nrm, _FLOAT, "VEC3", _ARRAY_BUFFER),
                 "JOINTS_0": buf.add(joints0, _UBYTE, "VEC4", _ARRAY_BUFFER),
                 "WEIGHTS_0": buf.add(weights0, _FLOAT, "VEC4", _ARRAY_BUFFER)}
        indices = buf.add(idx.astype(np.uint16), _USHORT, "SCALAR", _ELEMENT_ARRAY_BUFFER)
        gltf["materials"] = [{"name": "bones", "pbrMetallicRoughness": {
            "baseColorFactor": [0.8, 0.55, 0.3, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8}}]
        gltf["meshes"] = [{"name": "bones", "primitives": [{"attributes": attrs, "indices": indices,
                                                             "material": 0}]}]
        nodes.append({"name": "body", "mesh": 0, "skin": 0})
        gltf["scenes"][0]["nodes"].append(NUM_JOINTS)
    times = buf.add(np.arange(T, dtype=np.float64) / fps, _FLOAT, "SCALAR", bounds=True)
    samplers, channels = [], []
    for j in range(NUM_JOINTS):
        samplers.append({"input": times, "output": buf.add(keys[:, j], _FLOAT, "VEC4"), "interpolation": "LINEAR"})
        channels.append({"sampler": j, "target": {"node": j, "path": "rotation"}})
    samplers.append({"input": times, "output": buf.add(hips, _FLOAT, "VEC3"), "interpolation": "LINEAR"})
    channels.append({"sampler": NUM_JOINTS, "target": {"node": 0, "path": "translation"}})
    gltf["animations"] = [{"name": name, "samplers": samplers, "channels": channels}]
    while len(buf.data) % 4:
        buf.data.append(0)
    gltf["buffers"] = [{"byteLength": len(buf.data)}]
    gltf["bufferViews"] = buf.views
    gltf["accessors"] = buf.accessors

    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    body = bytes(buf.data)
    total = 12 + 8 + len(text) + 8 + len(body)
    return (struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, total)
            + struct.pack("<II", len(text), _CHUNK_JSON) + text
            + struct.pack("<II", len(body), _CHUNK_BIN) + body)


def write_glb(path: str | Path, motion: np.ndarray, root: np.ndarray | None = None,
              rotations: np.ndarray | None = None, fps: float = FPS,
              skeleton: BVHSkeleton = DATASET_SKELETON, mesh: bool = True, name: str = "motion") -> Path:
    """Write a motion as a glTF 2.0 binary file (``.glb``): skeleton nodes, skin, animation.

    Args:
        path: output path (parent folders are created).
        motion: joint positions (T, 21, 3) metres, or local rotations (T, 21, 4) unit quaternions
            (x, y, z, w) on ``skeleton`` (the sampler's ``FrameChunk.rotations`` convention;
            then ``root`` is required), at ``fps``, canonical joint order.
        root: (T, 3) hips positions in metres; default ``motion[:, 0]`` for joint positions.
        rotations: with joint positions, their local rotations (T, 21, 4) (the runtime's, so the
            file plays back exactly the streamed positions); None projects the joints onto the
            skeleton first (:func:`coamd.sampling.skeleton_projection.project_motion`).
        fps: frames per second (key times ``i / fps``), default 20.
        skeleton: rest skeleton (default: the runtime's, :func:`coamd.io.bvh_export.rest_offsets`).
        mesh: also write a simple skinned mesh (a box per bone); False writes only the skeleton.
        name: scene and animation name.
    Returns:
        The path written (see the module docstring for the layout).
    Raises:
        GLTFExportError: bad shapes, NaN, rotations that are not unit quaternions, rotations
            without ``root``, non-positive ``fps``.
        OSError: the file cannot be written.
    """
    data = glb_bytes(motion, root, rotations, fps, skeleton, mesh, name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
