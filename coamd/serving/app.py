"""The Ray Serve application: a ``FrontDoor`` deployment (the gRPC endpoint) bound to a
``MotionReplica`` deployment (the models, autoscaled on queue length).

Serve config (``deploy/ray/serve.yaml``; KubeRay's ``serveConfigV2`` takes the same text)::

    proxy_location: Disabled          # the front door is ours; Serve's HTTP/gRPC proxies are not needed
    applications:
      - name: coamd
        import_path: coamd.serving.app:build_app
        args:
          front_door: {host: 0.0.0.0, port: 50051, token_env: COAMD_TOKEN}
          replica: {backend: onnxruntime, guidance: true, max_batch: 8, max_queue: 32}
        deployments:
          - name: MotionReplica
            autoscaling_config: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 4}

``args`` sections: ``front_door`` (:class:`~coamd.serving.front_door.FrontDoorOptions`), ``replica``
(:class:`~coamd.serving.replica.ReplicaOptions`), ``deployments`` (a mapping deployment name ->
Serve deployment options, applied before the config's own ``deployments`` overrides; used by
``coamd deploy``) and ``ingress``: ``front_door`` (default) or ``proxy`` (no front door: the
``MotionReplica`` deployment is the ingress of Ray Serve's own gRPC proxy, which ``benchmarks/load.py
--ray`` measures against ours; it has no grpc.health.v1, no TLS and no token, see docs/scaling.md).

Autoscaling uses Serve's default policy, ``replica_queue_length_autoscaling_policy``: the number of
replicas follows the requests queued and running per replica (every gRPC stream is one ongoing
request from the moment the front door routes it until its last frame) against
``target_ongoing_requests``; delays and bounds come from ``autoscaling_config``. Scale-down is
graceful: Serve stops routing to the replica, waits for its streams
(``graceful_shutdown_timeout_s``), then calls its drain (:meth:`MotionReplica.__del__`).
"""
from __future__ import annotations

import copy

from ray import serve

from coamd.serving.front_door import FrontDoor, FrontDoorOptions
from coamd.serving.replica import MotionReplica, ReplicaOptions

APP_NAME = "coamd"
REPLICA_DEPLOYMENT = "MotionReplica"
FRONT_DOOR_DEPLOYMENT = "FrontDoor"
SERVICER_FUNCTION = "coamd.serving.app:add_motion_servicer_to_server"

# How often handles and replicas report queue lengths to the autoscaler (Ray's default: 10 s).
METRIC_PUSH_ENV = {"RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                   "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}
# Deployment options of the replicas (the Serve config's `deployments` section overrides them).
REPLICA_OPTIONS = dict(
    # Serve's per-replica cap sits above the scheduler's own bounds (max_batch running + max_queue
    # waiting), so admission (RESOURCE_EXHAUSTED by expected wait) stays the scheduler's.
    max_ongoing_requests=64,
    autoscaling_config=dict(min_replicas=1, max_replicas=4, target_ongoing_requests=4,
                            upscale_delay_s=5.0, downscale_delay_s=60.0, look_back_period_s=15.0),
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=60.0,
    health_check_period_s=5.0,
    health_check_timeout_s=30.0,
    ray_actor_options={"num_cpus": 2, "runtime_env": {"env_vars": METRIC_PUSH_ENV}},
)
# The front door holds no model: no CPU reserved, one per application by default. Its deployment
# handle reports the queue lengths the autoscaler acts on.
FRONT_DOOR_OPTIONS = dict(num_replicas=1, max_ongoing_requests=1000,
                          ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": METRIC_PUSH_ENV}},
                          health_check_period_s=5.0, graceful_shutdown_timeout_s=60.0)

MotionReplicaDeployment = serve.deployment(name=REPLICA_DEPLOYMENT, **REPLICA_OPTIONS)(MotionReplica)
FrontDoorDeployment = serve.deployment(name=FRONT_DOOR_DEPLOYMENT, **FRONT_DOOR_OPTIONS)(FrontDoor)


def add_motion_servicer_to_server(servicer, server) -> None:
    """``grpc_servicer_functions`` entry for Ray Serve's gRPC proxy (``ingress: proxy``): registers
    ``coamd.v1.MotionService`` from the generated code (generated on first import)."""
    from coamd.api import pb_grpc
    from coamd.serving.replica import register_pickle_alias

    register_pickle_alias()     # the proxy pickles the parsed request to the replica
    pb_grpc.add_MotionServiceServicer_to_server(servicer, server)


def build_app(args: dict | None = None):
    """Application builder (``import_path: coamd.serving.app:build_app``). ``args`` as in the module
    docstring. Raises ValueError for unknown sections, options or deployment names."""
    args = copy.deepcopy(dict(args or {}))
    front = args.pop("front_door", None) or {}
    replica = args.pop("replica", None) or {}
    overrides = args.pop("deployments", None) or {}
    ingress = args.pop("ingress", "front_door")
    if args:
        raise ValueError(f"unknown application argument(s) {', '.join(sorted(args))}; "
                         "known: front_door, replica, deployments, ingress")
    if ingress not in ("front_door", "proxy"):
        raise ValueError(f"ingress must be front_door or proxy, got {ingress!r}")
    unknown = sorted(set(overrides) - {REPLICA_DEPLOYMENT, FRONT_DOOR_DEPLOYMENT})
    if unknown:
        raise ValueError(f"unknown deployment(s) {', '.join(unknown)}; known: {REPLICA_DEPLOYMENT}, {FRONT_DOOR_DEPLOYMENT}")
    ReplicaOptions.from_dict(replica)     # fail here, not in every replica
    replica_dep = MotionReplicaDeployment
    if overrides.get(REPLICA_DEPLOYMENT):
        replica_dep = replica_dep.options(**overrides[REPLICA_DEPLOYMENT])
    replicas = replica_dep.bind(replica)
    if ingress == "proxy":
        return replicas
    door = FrontDoorOptions.from_dict(front)
    if door.token is not None:
        door.resolve_token()          # an inline token must not be empty
    front_dep = FrontDoorDeployment
    if overrides.get(FRONT_DOOR_DEPLOYMENT):
        front_dep = front_dep.options(**overrides[FRONT_DOOR_DEPLOYMENT])
    return front_dep.bind(replicas, front)
