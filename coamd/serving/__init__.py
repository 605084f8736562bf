"""Serving beyond one machine: the motion service on a Ray Serve cluster (optional extra ``ray``).

- :mod:`coamd.serving.replica`: ``MotionReplica``, one engine + the continuous-batching scheduler +
  the ordinary ``MotionService`` handlers per replica;
- :mod:`coamd.serving.front_door`: the gRPC front door (same ``coamd.v1.MotionService`` contract,
  health per replica, reflection, TLS, bearer token) that routes calls to replicas through Serve
  deployment handles and ends a stream whose replica died with UNAVAILABLE;
- :mod:`coamd.serving.app`: the Serve application (``import_path: coamd.serving.app:build_app``)
  and its deployment defaults, autoscaled on queue length;
- :mod:`coamd.serving.cli`: ``coamd deploy`` (deploy to a cluster, drain on SIGTERM);
- :mod:`coamd.serving.status`: replica ids, states and processes from the Serve controller;
- :mod:`coamd.serving.local_cluster`: a multi-node Ray cluster on one machine (tests, benchmark).

Nothing here is imported by ``coamd serve``; Ray is needed only for these modules. See
docs/scaling.md for the design, the measured cost and the capacity plan.
"""
