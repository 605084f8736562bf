"""What the Serve controller knows about the replicas of a deployment.

The controller's instance details (the ``ServeInstanceDetails`` schema that ``serve status`` and the
dashboard's ``/api/serve/applications/`` endpoint show) list every replica with its id, state,
process id and node. Ray exposes them in Python only through the controller client, which this
module isolates in one function; ``pyproject.toml`` pins the Ray version it was written against.
Call from a process connected to the cluster (``ray.init``; otherwise the answer is empty);
blocking.
"""
from __future__ import annotations


def serve_details() -> dict:
    """The controller's ``ServeInstanceDetails`` as a dict (``{}`` when Serve is not running; a
    controller that died or was shut down since the last call is looked up again)."""
    import ray
    from ray.exceptions import RayActorError
    from ray.serve import context

    if not ray.is_initialized():   # never let a lookup start a local Ray instance of its own
        return {}
    for attempt in range(2):
        client = context._get_global_client(raise_if_no_controller_running=False)
        if client is None:
            return {}
        try:
            return client.get_serve_details()
        except RayActorError:
            context._disconnect()      # a stale handle: forget it and look the controller up again
    return {}


def replica_table(app_name: str = "coamd", deployment: str = "MotionReplica") -> list[dict]:
    """Replicas of ``deployment`` in application ``app_name``: dicts with ``replica_id``, ``state``
    (``STARTING``, ``RUNNING``, ``STOPPING``, ...), ``pid``, ``node_id``, ``node_ip``,
    ``actor_name`` and ``actor_id``; an empty list when the application or deployment does not exist."""
    details = serve_details()
    app = (details.get("applications") or {}).get(app_name)
    if not app:
        return []
    dep = (app.get("deployments") or {}).get(deployment)
    if not dep:
        return []
    rows = []
    for r in dep.get("replicas") or []:
        state = r.get("state")
        rows.append({"replica_id": r.get("replica_id"), "state": getattr(state, "value", state),
                     "pid": r.get("pid"), "node_id": r.get("node_id"), "node_ip": r.get("node_ip"),
                     "actor_name": r.get("actor_name"), "actor_id": r.get("actor_id")})
    return rows


def deployment_status(app_name: str = "coamd") -> dict:
    """Application status and, per deployment, its status and target replica count."""
    details = serve_details()
    app = (details.get("applications") or {}).get(app_name)
    if not app:
        return {}
    out = {"status": getattr(app.get("status"), "value", app.get("status")), "deployments": {}}
    for name, dep in (app.get("deployments") or {}).items():
        out["deployments"][name] = {"status": getattr(dep.get("status"), "value", dep.get("status")),
                                    "target_num_replicas": dep.get("target_num_replicas"),
                                    "replicas": len(dep.get("replicas") or [])}
    return out
