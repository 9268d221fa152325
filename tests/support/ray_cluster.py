"""A local Ray head for the test session, started by ketch's own :class:`LocalRayHead`.

One head serves the whole session (starting one takes seconds): 127.0.0.1 only, token
authentication, 8 logical CPUs and 8 GiB of logical memory (only what attempts may
reserve; nothing is allocated up front), no GPUs. Each test works in a namespace of its
own, so attempt ids never meet across tests.

The session fixture :func:`ray_cluster` skips when Ray is not installed or the head
cannot start, and fails instead in CI or with ``KETCH_TEST_RAY=required``. At the end
it disconnects this process and stops the head, which ends every attempt still on it.

The executors under test talk to the head through their driver processes; this process
connects too (lazily, in :meth:`RayTestCluster.ray`) to kill actors as a failure would.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ketch.compute.executors import Handle
from ketch.compute.executors._ray_actor import actor_name
from ketch.compute.executors._ray_head import LocalRayHead
from ketch.compute.executors.ray import RayExecutor, _Attempt, ray_available
from ketch.core.errors import BackendUnavailable
from support.required import skip_or_fail

__all__ = ["RayTestCluster", "ray_cluster"]


class RayTestCluster:
    """The session's head, and what tests do with it."""

    def __init__(self, head: LocalRayHead, address: str) -> None:
        self.head = head
        self.address = address

    @property
    def token_file(self) -> Path:
        return self.head.token_file

    def new_namespace(self) -> str:
        return f"test-{uuid.uuid4().hex[:12]}"

    def executor(self, namespace: str, **options: Any) -> RayExecutor:
        return RayExecutor(self.address, self.token_file, namespace=namespace, **options)

    def ray(self) -> Any:
        """The ``ray`` module, this process connected to the head."""
        # Read by Ray when it is imported and connects (see _ray_head.py and _ray_driver.py).
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(self.token_file)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        return ray

    def lose(self, handle: Handle) -> None:
        """Kill the attempt's actor, as a crashed worker or node would end it."""
        attempt = _Attempt.from_handle(handle)
        ray = self.ray()
        actor = ray.get_actor(actor_name(attempt.attempt_id), namespace=attempt.namespace)
        ray.kill(actor, no_restart=True)

    def clean_up(self, namespace: str) -> None:
        """Kill every actor left in ``namespace``; their watchers end their attempts."""
        ray = self.ray()
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["namespace"] == namespace:
                try:
                    found = ray.get_actor(actor["name"], namespace=namespace)
                except ValueError:
                    continue  # ended meanwhile
                ray.kill(found, no_restart=True)

    def close(self) -> None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()  # first: Ray ends a driver whose head went away
        self.head.stop()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayTestCluster]:
    if not ray_available():
        skip_or_fail("RAY", "ray is missing; install the dev extra (pip install -e '.[dev]')")
    head = LocalRayHead(tmp_path_factory.mktemp("ray") / "head", cpus=8, memory_mib=8192, gpus=0)
    try:
        address = head.ensure()
    except BackendUnavailable as exc:
        head.stop()
        skip_or_fail("RAY", f"the local Ray head did not start: {exc}")
    cluster = RayTestCluster(head, address)
    try:
        yield cluster
    finally:
        cluster.close()
