"""What only :class:`RayExecutor` promises (the shared contract is in
``test_conformance.py``): token authentication, a head on loopback only, attempts that
wait for resources the cluster lacks, handles a new process follows, settings, and a
clear error where Ray is not installed."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from ketch.compute.executors import AttemptExists, AttemptState, Handle, Launch
from ketch.compute.executors._ray_head import LocalRayHead
from ketch.compute.executors.ray import RayExecutor, _DriverProcess, ray_available
from ketch.core.errors import BackendUnavailable
from ketch.core.instances import INSTANCE_TYPES
from ketch.core.settings import JobSettings, RaySettings, load_settings
from ketch.server.jobs import build_executor
from support.ray_cluster import RayTestCluster

pytestmark = pytest.mark.ray

SRC = Path(__file__).resolve().parents[3] / "src"
LOOPBACK_ADDRESSES = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
WAIT_FOR_RELEASE = """
import os, sys, time
open(os.path.join(os.environ["MARK"], "ready"), "w").close()
while not os.path.exists(os.path.join(os.environ["MARK"], "release")):
    time.sleep(0.01)
raise SystemExit(int(sys.argv[1]))
"""


@pytest.fixture
def namespace(ray_cluster: RayTestCluster) -> Iterator[str]:
    namespace = ray_cluster.new_namespace()
    yield namespace
    ray_cluster.clean_up(namespace)


@pytest.fixture
def executor(ray_cluster: RayTestCluster, namespace: str) -> RayExecutor:
    return ray_cluster.executor(namespace, timeout_grace_seconds=1)


@pytest.fixture
def launch(tmp_path: Path) -> Callable[..., Launch]:
    def make(code: str, *args: str, **fields: object) -> Launch:
        values: dict[str, object] = {
            "attempt_id": "job-1",
            "argv": (sys.executable, "-c", code, *args),
            "env": {"PATH": os.defpath, "MARK": str(tmp_path)},
            "cwd": tmp_path,
            "log_path": tmp_path / "job.log",
            "instance": INSTANCE_TYPES["cpu.small"],
            "max_runtime_seconds": 60,
        }
        return Launch(**(values | fields))  # type: ignore[arg-type]

    return make


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# -- the cluster ---------------------------------------------------------------------------

PROBE = """
import sys
from ray._raylet import GcsClient
try:
    print(len(GcsClient(address=sys.argv[1]).internal_kv_keys(b"", None, timeout=10)))
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize("token", ["none", "wrong", "right"])
def test_the_cluster_answers_only_clients_with_its_token(
    ray_cluster: RayTestCluster, tmp_path: Path, token: str
) -> None:
    env = {"HOME": str(tmp_path), "PATH": os.defpath, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if token != "none":
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-token")
        path = ray_cluster.token_file if token == "right" else wrong
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, ray_cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = probe.stdout.strip().splitlines()[-1]
    if token == "right":
        assert answer.isdigit(), probe.stderr
    else:
        assert answer == "AuthenticationError", probe.stderr


def _listening_sockets() -> dict[int, str]:
    """inode -> local address of every listening TCP socket on the machine."""
    found = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found[int(fields[9])] = socket.inet_ntop(family, words)
    return found


def test_the_head_and_its_workers_listen_on_loopback_only(
    ray_cluster: RayTestCluster,
    executor: RayExecutor,
    launch: Callable[..., Launch],
    tmp_path: Path,
) -> None:
    handle = executor.start(launch(WAIT_FOR_RELEASE, "0"))
    wait_for(tmp_path / "ready")  # a worker runs the attempt's actor now
    head = ray_cluster.head._read()
    assert head is not None
    sockets = _listening_sockets()
    seen: dict[str, set[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            if int(text[text.rindex(")") + 2 :].split()[3]) != head.pid:  # not in its session
                continue
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = (entry / "comm").read_text().strip()
        for link in links:
            inode = int(link[8:-1]) if link.startswith("socket:[") else None
            if inode in sockets:
                seen.setdefault(sockets[inode], set()).add(name)
    assert seen, "the head's processes listen nowhere?"
    assert set(seen) <= LOOPBACK_ADDRESSES, f"listening beyond loopback: {seen}"
    (tmp_path / "release").touch()
    assert executor.wait(handle, timeout=20).state is AttemptState.SUCCEEDED


def test_a_second_ensure_finds_the_running_head(ray_cluster: RayTestCluster) -> None:
    again = LocalRayHead(ray_cluster.head.folder)
    assert again.ensure() == ray_cluster.address
    assert again.address() == ray_cluster.address


# -- attempts --------------------------------------------------------------------------------


@pytest.mark.parametrize("instance", ["cpu.2xlarge", "gpu.small"])
def test_an_attempt_the_cluster_cannot_place_waits_and_can_be_stopped(
    executor: RayExecutor, launch: Callable[..., Launch], tmp_path: Path, instance: str
) -> None:
    """16 CPUs, or a GPU, on a head with 8 CPUs and none: the actor waits for them."""
    handle = executor.start(launch(WAIT_FOR_RELEASE, "0", instance=INSTANCE_TYPES[instance]))
    # A small attempt started after it runs: the cluster places work, just not that one.
    control_marks = tmp_path / "control"
    control_marks.mkdir()
    control = executor.start(
        launch(
            WAIT_FOR_RELEASE,
            "0",
            attempt_id="control",
            env={"PATH": os.defpath, "MARK": str(control_marks)},
        )
    )
    wait_for(control_marks / "ready")
    (control_marks / "release").touch()
    assert executor.wait(control, timeout=20).state is AttemptState.SUCCEEDED
    assert executor.wait(handle, timeout=0.1).state is AttemptState.RUNNING
    assert not (tmp_path / "ready").exists()
    executor.stop(handle, grace_seconds=0)
    status = executor.wait(handle, timeout=10)
    assert status.state is AttemptState.STOPPED
    assert status.reason is not None and "before it began" in status.reason
    assert executor.find("job-1") == handle
    with pytest.raises(AttemptExists):
        executor.start(launch("pass"))
    assert not (tmp_path / "ready").exists()


FOLLOW = """
import json, sys, time
from pathlib import Path
from ketch.compute.executors.ray import RayExecutor

address, token_file, namespace, release = sys.argv[1:]
executor = RayExecutor(address, Path(token_file), namespace=namespace)
handle = executor.find("job-1")
seen = [executor.find("job-2"), executor.status(handle).state.value]
Path(release).touch()
status = executor.wait(handle, timeout=30)
print(json.dumps(seen + [status.state.value, status.exit_code, "ray" in sys.modules]))
"""


def test_a_new_server_process_finds_and_follows_the_attempt(
    ray_cluster: RayTestCluster,
    executor: RayExecutor,
    namespace: str,
    launch: Callable[..., Launch],
    tmp_path: Path,
) -> None:
    handle = executor.start(launch(WAIT_FOR_RELEASE, "7"))
    wait_for(tmp_path / "ready")
    arguments = [ray_cluster.address, str(ray_cluster.token_file), namespace]
    follower = subprocess.run(
        [sys.executable, "-c", FOLLOW, *arguments, str(tmp_path / "release")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert follower.returncode == 0, follower.stderr[-3000:]
    # ... and never imports Ray itself: its driver process does.
    assert json.loads(follower.stdout.splitlines()[-1]) == [None, "running", "failed", 7, False]
    assert executor.status(handle).exit_code == 7


def test_a_dead_driver_process_is_started_again(
    executor: RayExecutor, launch: Callable[..., Launch], tmp_path: Path
) -> None:
    handle = executor.start(launch(WAIT_FOR_RELEASE, "0"))
    wait_for(tmp_path / "ready")
    process = executor._driver._process
    assert process is not None
    process.kill()
    process.wait()
    (tmp_path / "release").touch()
    deadline = time.monotonic() + 20
    while True:  # a call already under way when it died fails; the next one starts anew
        try:
            status = executor.wait(handle, timeout=10)
            break
        except BackendUnavailable:
            assert time.monotonic() < deadline
    assert status.state is AttemptState.SUCCEEDED
    assert executor._driver._process is not process


def test_a_handle_of_another_cluster_is_lost(executor: RayExecutor) -> None:
    handle: Handle = json.dumps({"attempt_id": "job-elsewhere", "namespace": executor.namespace})
    status = executor.status(handle)
    assert status.state is AttemptState.LOST
    assert status.reason is not None and "no record" in status.reason
    with pytest.raises(ValueError, match="not a Ray executor handle"):
        executor.status('{"pid": 1}')


# -- settings and construction ---------------------------------------------------------------


def test_an_address_needs_a_token_and_a_plain_host_and_port() -> None:
    with pytest.raises(ValidationError, match=r"jobs\.ray\.token is needed"):
        RaySettings(address="10.0.0.5:6379")
    for bad in ("ray://10.0.0.5:10001", "10.0.0.5", "10.0.0.5:http", "10.0.0.5:70000"):
        with pytest.raises(ValidationError, match="host:port"):
            RaySettings(address=bad, token=SecretStr("t"))
    assert RaySettings(address="10.0.0.5:6379", token=SecretStr("t")).address == "10.0.0.5:6379"
    with pytest.raises(ValidationError, match="own Ray head"):
        RaySettings(address="10.0.0.5:6379", token=SecretStr("t"), cpus=4)


def test_the_settings_come_from_the_environment_and_hide_the_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KETCH_HOME", str(tmp_path))
    monkeypatch.setenv("KETCH_JOBS__EXECUTOR", "ray")
    monkeypatch.setenv("KETCH_JOBS__RAY__ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("KETCH_JOBS__RAY__TOKEN", "s3cr3t-token")
    jobs = load_settings().jobs
    assert jobs.executor == "ray"
    assert jobs.ray.token is not None and jobs.ray.token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(jobs) + str(jobs) + jobs.model_dump_json()


def test_build_executor_connects_to_the_configured_cluster(
    ray_cluster: RayTestCluster,
    namespace: str,
    launch: Callable[..., Launch],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = ray_cluster.token_file.read_text()
    settings = JobSettings(
        executor="ray",
        ray=RaySettings(address=ray_cluster.address, token=SecretStr(token), namespace=namespace),
    )
    with caplog.at_level(logging.DEBUG):
        executor = build_executor(settings, tmp_path / "jobs")
    assert isinstance(executor, RayExecutor)
    token_file = tmp_path / "jobs" / "ray" / "auth_token"
    assert token_file.read_text() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    handle = executor.start(launch("print('on ray')"))
    assert executor.wait(handle, timeout=20).state is AttemptState.SUCCEEDED
    assert "on ray" in (tmp_path / "job.log").read_text()
    assert token not in caplog.text


def test_without_an_address_the_server_uses_its_own_head(
    ray_cluster: RayTestCluster, namespace: str
) -> None:
    """``from_settings`` finds the head in ``<state dir>/head``; here, the session's."""
    executor = RayExecutor.from_settings(
        RaySettings(namespace=namespace), ray_cluster.head.folder.parent
    )
    assert executor.address == ray_cluster.address


def test_the_local_executor_stays_the_default(tmp_path: Path) -> None:
    assert build_executor(JobSettings(), tmp_path).name == "local"


def test_without_ray_the_module_imports_and_building_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        import ketch.compute.executors.ray as module
        print(module.ray_available())
        """
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert imported.stdout.strip() == "False", imported.stderr
    monkeypatch.setitem(sys.modules, "ray", None)
    assert not ray_available()
    with pytest.raises(BackendUnavailable, match=r"pip install 'ketch\[ray\]'"):
        RayExecutor.from_settings(RaySettings(), tmp_path)
    assert not (tmp_path / "head").exists(), "nothing may be started without Ray"


def test_a_dead_drivers_reader_fails_only_its_own_calls(tmp_path: Path) -> None:
    """The reader of a driver that died fails the calls sent to it, never those already
    sent to the driver that replaced it (they would fail with a cluster that is fine)."""
    driver = _DriverProcess("127.0.0.1:1", tmp_path / "token", "ns")
    ready: Future[tuple[str, Any]] = Future()
    ready.set_result(("ok", None))
    sent_to_the_dead: Future[tuple[str, Any]] = Future()
    sent_to_the_successor: Future[tuple[str, Any]] = Future()
    driver._pending = {7: sent_to_the_successor}  # what _connect made for the successor

    class Ended:
        pid = 4242

        def wait(self) -> int:
            return -9

    driver._read(Ended(), io.StringIO(""), ready, {3: sent_to_the_dead})  # type: ignore[arg-type]

    assert isinstance(sent_to_the_dead.exception(timeout=0), BackendUnavailable)
    assert not sent_to_the_successor.done()
