"""The gRPC contract ``coamd.v1.MotionService`` in Python, shared by the server and every client.

``proto/coamd/v1/motion.proto`` is the single source of truth; its Python code is generated on
first import (:mod:`coamd.api.codegen`, never committed). This package imports only
``protobuf``/``grpcio`` and the skeleton constants (no torch, no models, no server), so the server
(``coamd.server``) and the clients (``coamd.client``, tools, benchmarks) depend on it alike and
never on each other.

- ``pb``, ``pb_grpc``: the generated ``motion_pb2`` / ``motion_pb2_grpc`` modules.
- ``SERVICE_NAME``: ``"coamd.v1.MotionService"`` (health checks, reflection).
- ``FPS`` (frames per second of every stream, 20), ``NUM_JOINTS`` (21) and ``JOINT_NAMES``: the
  frame layout of ``Frame.positions`` (21 x 3 floats, metres) and ``Frame.rotations`` (21 x 4).
- ``MAX_MESSAGE_BYTES``: the largest message either side accepts (16 MiB; a 60 s motion at 20 fps
  with positions and rotations is about 0.7 MB).

Raises :class:`~coamd.api.codegen.ProtoError` on import when the ``.proto`` file or
``grpcio-tools`` is missing or protoc fails.
"""
from __future__ import annotations

from coamd.api.codegen import ProtoError, ensure_generated, load, proto_file
from coamd.skeleton import FPS, JOINT_NAMES, NUM_JOINTS

pb, pb_grpc = load()
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["MotionService"].full_name  # "coamd.v1.MotionService"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

__all__ = ["pb", "pb_grpc", "SERVICE_NAME", "FPS", "NUM_JOINTS", "JOINT_NAMES", "MAX_MESSAGE_BYTES",
           "ProtoError", "ensure_generated", "proto_file"]
