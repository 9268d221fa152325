"""Fixtures of the compute tests: the session's local Ray head (see support/ray_cluster.py)."""

from support.ray_cluster import ray_cluster  # noqa: F401  (session fixture)
