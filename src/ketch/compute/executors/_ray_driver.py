"""The Ray driver of a :class:`~ketch.compute.executors.ray.RayExecutor`: a child process.

Ray ends a driver process whose cluster's GCS has been unreachable for a minute, and its
client takes its settings from the process environment only. So the server is never a
Ray driver itself: ``RayExecutor`` runs ``python -I _ray_driver.py ADDRESS NAMESPACE``
with an environment built for it (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``, and
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` for a loopback head, see ``_ray_head.py``) and
talks to it in JSON lines: requests ``{"id", "op", "args"}`` on standard input, answers
``{"id", "ok"}`` or ``{"id", "error": [type, message]}`` on the standard output it had at
start (Ray's own output goes to standard error, the driver's log). Requests are served
concurrently (a ``wait`` blocks only its own). The end of standard input ends the process.

The bookkeeping (module docstring of ``ray.py``) lives here: the ``attempt``, ``began``
and ``result`` keys in Ray's key-value store, one detached named actor per attempt
(``_ray_actor.py``, sent by value: nodes need Ray, not ketch). Statuses are plain dicts
``{"state", "exit_code", "reason"}`` with the values of ``AttemptState``.

It imports the standard library and Ray only, never ``ketch`` (it starts faster, and
``-I`` keeps the folder of this file, which holds a ``ray.py``, off ``sys.path``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.experimental import internal_kv

HERE = Path(__file__).parent
ACTOR_FILES = {"supervisor.py": HERE / "_supervisor.py", "watch.py": HERE / "_ray_watch.py"}
GIVEN_UP = b"given-up"
START_WINDOW_SECONDS = 60.0
"""How long after its claim an attempt with no actor yet counts as starting, not lost."""
ACTOR_CONCURRENCY = 8
"""Calls one actor serves at once (waits from several executors, a stop)."""
CALL_SECONDS = 5.0
WAIT_CHUNK_SECONDS = 10.0
POLL_SECONDS = 0.1
MAX_REQUESTS = 64
MIB = 1024 * 1024


def _load_actor_module() -> Any:
    """``_ray_actor.py`` by path (this process does not import ketch)."""
    spec = importlib.util.spec_from_file_location("ketch_ray_actor", HERE / "_ray_actor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # cloudpickle sends only registered, imported modules
    spec.loader.exec_module(module)
    ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
    return module


actors = _load_actor_module()


class AttemptExistsError(Exception):
    """Answered as ``AttemptExists``."""


def _status(state: str, reason: str, exit_code: int | None = None) -> dict[str, Any]:
    return {"state": state, "exit_code": exit_code, "reason": reason}


RUNNING = _status("running", "")


class Attempts:
    """The executor's operations, on the attempts of one namespace."""

    def __init__(self, namespace: str, actor_class: Any, files: dict[str, str]) -> None:
        self.namespace = namespace
        self._actor_class = actor_class
        self._files = files

    def start(self, attempt_id: str, launch: dict[str, Any], resources: dict[str, int]) -> None:
        claim = json.dumps({"claimed_at": time.time()}).encode()
        if self._put(actors.claim_key(attempt_id), claim):
            raise AttemptExistsError(f"attempt {attempt_id!r} was started before")
        try:
            self._actor_class.options(
                name=actors.actor_name(attempt_id),
                namespace=self.namespace,
                lifetime="detached",
                max_restarts=0,
                max_concurrency=ACTOR_CONCURRENCY,
                num_cpus=resources["cpus"],
                num_gpus=resources["gpus"],
                memory=resources["memory_mib"] * MIB,
            ).remote(self.namespace, attempt_id, launch, self._files)
        except Exception as exc:
            self._give_up(attempt_id, "lost", f"its actor could not be created: {exc}")
            raise

    def find(self, attempt_id: str) -> bool:
        return self._get(actors.claim_key(attempt_id)) is not None

    def status(self, attempt_id: str) -> dict[str, Any]:
        result = self._result(attempt_id)
        if result is not None:
            return result
        if self._actor(attempt_id) is not None:
            return RUNNING
        # It may have recorded its result and ended between the two looks above.
        result = self._result(attempt_id)
        if result is not None:
            return result
        claim = self._get(actors.claim_key(attempt_id))
        if claim is None:
            return _status("lost", f"the Ray cluster has no record of attempt {attempt_id}")
        began = self._get(actors.began_key(attempt_id))
        if began is None and time.time() - json.loads(claim)["claimed_at"] < START_WINDOW_SECONDS:
            return RUNNING  # its start is still under way
        reason = f"the Ray actor of attempt {attempt_id} is gone without a result"
        if began is None:
            reason = f"attempt {attempt_id} never began: its Ray actor was never created"
        return self._give_up(attempt_id, "lost", reason)

    def wait(self, attempt_id: str, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(attempt_id)
            left = None if deadline is None else deadline - time.monotonic()
            if status["state"] != "running" or (left is not None and left <= 0):
                return status
            chunk = WAIT_CHUNK_SECONDS if left is None else min(left, WAIT_CHUNK_SECONDS)
            actor = self._actor(attempt_id)
            if actor is None or self._get(actors.began_key(attempt_id)) != actors.RAN:
                time.sleep(min(POLL_SECONDS, chunk))  # not placed yet: calls would queue
                continue
            # Ended, lost or slow: the next status() says which.
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(actor.outcome.remote(chunk), timeout=chunk + CALL_SECONDS)

    def stop(self, attempt_id: str, grace_seconds: float) -> None:
        if self._result(attempt_id) is not None:
            return
        if self._get(actors.began_key(attempt_id)) is None:
            self._give_up(attempt_id, "stopped", "stopped on request before it began")
            if self._get(actors.began_key(attempt_id)) == GIVEN_UP:
                return
        # It began, so its actor had registered its name: None now means it has ended.
        actor = self._actor(attempt_id)
        if actor is None:
            return
        try:
            ray.get(actor.stop.remote(grace_seconds), timeout=CALL_SECONDS)
        except ray.exceptions.RayError as exc:
            logging.warning("attempt %s: the stop did not reach its actor: %s", attempt_id, exc)

    # -- helpers ------------------------------------------------------------------------

    def _give_up(self, attempt_id: str, state: str, reason: str) -> dict[str, Any]:
        """End an attempt the executor can no longer follow, unless it began after all.

        Claims ``began`` (so a late actor does not run), ends any actor, and records the
        result; returns the recorded result, whoever wrote it, or RUNNING if it began.
        """
        key = actors.began_key(attempt_id)
        if not self._put(key, GIVEN_UP) or self._get(key) == GIVEN_UP:
            actor = self._actor(attempt_id)
            if actor is not None:
                ray.kill(actor, no_restart=True)
            self._put(actors.result_key(attempt_id), json.dumps(_status(state, reason)).encode())
        elif self._actor(attempt_id) is not None:
            return RUNNING
        else:
            reason = f"the Ray actor of attempt {attempt_id} is gone without a result"
            self._put(actors.result_key(attempt_id), json.dumps(_status("lost", reason)).encode())
        result = self._result(attempt_id)
        assert result is not None, "a result was just recorded"
        return result

    def _result(self, attempt_id: str) -> dict[str, Any] | None:
        data = self._get(actors.result_key(attempt_id))
        return None if data is None else dict(json.loads(data))

    def _actor(self, attempt_id: str) -> Any:
        """The attempt's live (or not yet placed) actor, or None."""
        try:
            return ray.get_actor(actors.actor_name(attempt_id), namespace=self.namespace)
        except ValueError:
            return None

    def _get(self, key: str) -> bytes | None:
        value = internal_kv._internal_kv_get(key, namespace=self.namespace)
        return None if value is None else bytes(value)

    def _put(self, key: str, value: bytes) -> bool:
        """Store ``value`` unless ``key`` has one; whether it had one."""
        stored = internal_kv._internal_kv_put(key, value, overwrite=False, namespace=self.namespace)
        return bool(stored)


class Driver:
    """One :class:`Attempts` per namespace (a handle names its own)."""

    def __init__(self) -> None:
        self._actor_class = ray.remote(actors.AttemptActor)
        self._files = {name: path.read_text(encoding="utf-8") for name, path in ACTOR_FILES.items()}
        self._namespaces: dict[str, Attempts] = {}
        self._lock = threading.Lock()

    def call(self, op: str, args: dict[str, Any]) -> Any:
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}")
        namespace = args.pop("namespace")
        with self._lock:
            if namespace not in self._namespaces:
                self._namespaces[namespace] = Attempts(namespace, self._actor_class, self._files)
            attempts = self._namespaces[namespace]
        return getattr(attempts, op)(**args)


OPS = {"start", "find", "status", "wait", "stop"}


def serve(driver: Driver, requests: Any, answers: Any) -> None:
    """Answer each request line on a thread of its own until ``requests`` ends."""
    lock = threading.Lock()

    def answer(request: dict[str, Any]) -> None:
        try:
            reply: dict[str, Any] = {"ok": driver.call(request["op"], request["args"])}
        except AttemptExistsError as exc:
            reply = {"error": ["AttemptExists", str(exc)]}
        except Exception as exc:  # every failure goes back to the caller, named
            logging.exception("%s failed", request["op"])
            reply = {"error": [type(exc).__name__, str(exc)]}
        line = json.dumps({"id": request["id"], **reply}) + "\n"
        with lock:
            answers.write(line)
            answers.flush()

    pool = concurrent.futures.ThreadPoolExecutor(MAX_REQUESTS, thread_name_prefix="request")
    for line in requests:
        pool.submit(answer, json.loads(line))


def main(address: str, namespace: str) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    # Answers go to the standard output we were given; anything else printed, to the log.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        ray.init(
            address=address,
            namespace=namespace,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        driver = Driver()
    except Exception as exc:
        answers.write(json.dumps({"id": 0, "error": [type(exc).__name__, str(exc)]}) + "\n")
        answers.flush()
        return 1
    answers.write(json.dumps({"id": 0, "ok": "ready"}) + "\n")
    answers.flush()
    serve(driver, sys.stdin, answers)
    # The executor is gone: so are the callers of any request still under way.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
