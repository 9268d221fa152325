"""``ketch.jobs``: a training or processing job in one call, from a local folder.

::

    import ketch

    job = ketch.jobs.train(
        entry_point="train.py",
        source_dir=".",
        inputs={"train": "ketch://fraud-dev/data/train.csv"},
        hyperparameters={"epochs": 3, "lr": 0.1},
        instance_type="cpu.small",
    )
    if job.status != "Completed":
        raise SystemExit(job.failure_reason)

:func:`train` packs ``source_dir`` into ``sourcedir.tar.gz``, uploads it to
``ketch://<account>/jobs/sources/<sha256>/`` (:func:`bundle_uri`), submits the job and
(``wait=True``) waits for it to end, writing its log and one line per status change to stderr unless
``quiet=True``. A job that fails is *returned*, not raised: the caller checks ``job.status``. The
account is taken from the input URIs unless given; the name is generated unless given.
Like ``ketch.artifacts``, a default :class:`~ketch.sdk.client.Client` is made (and
closed) for the call unless ``client=`` is passed.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ketch.core.archives import pack_folder
from ketch.core.artifact_uri import parse_uri
from ketch.core.errors import InvalidInput
from ketch.core.files import CHUNK_BYTES
from ketch.core.instances import DEFAULT_INSTANCE_TYPE
from ketch.schemas.jobs import Job
from ketch.sdk.client import Client
from ketch.sdk.resources.jobs import FINAL, Jobs, JobWaitTimeout, wait_timeout

__all__ = [
    "BUNDLE_NAME",
    "JobWaitTimeout",
    "account_of",
    "bundle_uri",
    "job_name",
    "pack_source_dir",
    "process",
    "train",
]

BUNDLE_NAME = "sourcedir.tar.gz"
SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".venv"})
"""Folders never packed: caches and version control, which the job does not need."""
MAX_NAME = 63
STATUS_SECONDS = 2.0
"""While following a job's log, how often its status is read again (and a change shown)."""
Hyperparameters = Mapping[str, bool | int | float | str]
MetricDefinitions = Sequence[Mapping[str, str]]
"""``[{"name": "loss", "regex": "loss=([0-9.eE+-]+)"}]``: the first group is the value."""


def pack_source_dir(
    source_dir: str | os.PathLike[str], target: str | os.PathLike[str], *, entry_point: str
) -> Path:
    """Write the regular files below ``source_dir`` to ``target`` as a gzip tar.

    The same files give the same bytes: members are sorted, owners, times and gzip
    header are zeroed, modes are 0644 (0755 if executable). ``__pycache__``, ``.git``,
    ``.venv``, symbolic links and special files are left out. A missing
    ``entry_point`` (``train.py``, or ``package.module:function``) is refused first.
    """
    root = Path(source_dir)
    if not root.is_dir():
        raise InvalidInput(f"source_dir {str(root)!r} is not a directory")
    _check_entry_point(root, entry_point)
    return pack_folder(
        root, Path(target), leave_out=SKIPPED_DIRS, skip_links=True, folder_entries=False
    )


def _check_entry_point(root: Path, entry_point: str) -> None:
    module, colon, _ = entry_point.partition(":")
    if colon:
        base = root.joinpath(*module.split("."))
        candidates = [base.with_name(base.name + ".py"), base / "__init__.py"]
    else:
        candidates = [root / PurePosixPath(entry_point)]
    if not any(c.is_file() and not c.is_symlink() for c in candidates):
        raise InvalidInput(
            f"entry point {entry_point!r} is not a file in {str(root)!r}; give a script "
            "relative to source_dir (train.py) or package.module:function"
        )


def account_of(*uris: str | None) -> str:
    """The one account every ``ketch://`` URI names (``None`` entries are ignored)."""
    accounts = {parse_uri(u, allow_prefix=True).account for u in uris if u is not None}
    if not accounts:
        raise InvalidInput(
            "cannot tell the account: pass account= (or inputs with ketch://<account>/ URIs)"
        )
    if len(accounts) > 1:
        raise InvalidInput(
            f"the URIs name several accounts ({', '.join(sorted(accounts))}); a job runs in "
            "one account: pass account= and URIs in it"
        )
    return accounts.pop()


def job_name(entry_point: str, *, now: datetime | None = None) -> str:
    """``<entry stem>-<UTC yyyymmdd-hhmmss>-<4 hex>``, a valid job name."""
    module, colon, _ = entry_point.partition(":")
    stem = module.rsplit(".", 1)[-1] if colon else PurePosixPath(module).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip("._-") or "job"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    suffix = f"-{stamp}-{secrets.token_hex(2)}"
    return stem[: MAX_NAME - len(suffix)].rstrip("._-") + suffix


def bundle_uri(account: str, bundle: Path) -> str:
    """Where a source bundle is stored: named by its SHA-256, so an upload never replaces
    the code of a job already queued (a reused name, a retry), and the same code is kept
    once however many jobs run it."""
    digest = hashlib.sha256()
    with bundle.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return f"ketch://{account}/jobs/sources/{digest.hexdigest()}/{BUNDLE_NAME}"


def train(
    entry_point: str,
    source_dir: str | os.PathLike[str] = ".",
    inputs: Mapping[str, str] | None = None,
    hyperparameters: Hyperparameters | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    *,
    account: str | None = None,
    name: str | None = None,
    output_uri: str | None = None,
    environment: Mapping[str, str] | None = None,
    max_runtime_seconds: int | None = None,
    metric_definitions: MetricDefinitions | None = None,
    wait: bool = True,
    timeout: float | None = None,
    quiet: bool = False,
    client: Client | None = None,
) -> Job:
    """Pack, upload, submit a training job; with ``wait`` return it once ended, its log
    streamed to stderr meanwhile (unless ``quiet``).

    A Failed or Stopped job is returned, not raised: check ``job.status``. ``timeout``
    bounds the wait (:class:`JobWaitTimeout`; the job goes on). ``metric_definitions``
    turn log lines into metric series (``client.training_jobs.metrics(...)``).
    """
    return _run(
        "training",
        entry_point,
        source_dir,
        inputs,
        hyperparameters,
        instance_type,
        extra={},
        options=_Options(
            account, name, output_uri, environment, max_runtime_seconds, metric_definitions
        ),
        wait=wait,
        timeout=timeout,
        quiet=quiet,
        client=client,
    )


def process(
    entry_point: str,
    source_dir: str | os.PathLike[str] = ".",
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    hyperparameters: Hyperparameters | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    *,
    account: str | None = None,
    name: str | None = None,
    output_uri: str | None = None,
    environment: Mapping[str, str] | None = None,
    max_runtime_seconds: int | None = None,
    metric_definitions: MetricDefinitions | None = None,
    wait: bool = True,
    timeout: float | None = None,
    quiet: bool = False,
    client: Client | None = None,
) -> Job:
    """:func:`train` for a processing job; ``outputs`` maps channel names to
    ``ketch://`` prefixes the job's output folders are uploaded to."""
    return _run(
        "processing",
        entry_point,
        source_dir,
        inputs,
        hyperparameters,
        instance_type,
        extra={"outputs": dict(outputs or {})},
        options=_Options(
            account, name, output_uri, environment, max_runtime_seconds, metric_definitions
        ),
        wait=wait,
        timeout=timeout,
        quiet=quiet,
        client=client,
    )


@dataclass(frozen=True)
class _Options:
    account: str | None
    name: str | None
    output_uri: str | None
    environment: Mapping[str, str] | None
    max_runtime_seconds: int | None
    metric_definitions: MetricDefinitions | None


def _run(
    kind: str,
    entry_point: str,
    source_dir: str | os.PathLike[str],
    inputs: Mapping[str, str] | None,
    hyperparameters: Hyperparameters | None,
    instance_type: str,
    *,
    extra: dict[str, Any],
    options: _Options,
    wait: bool,
    timeout: float | None,
    quiet: bool,
    client: Client | None,
) -> Job:
    channels = dict(inputs or {})
    account = options.account or account_of(*channels.values(), options.output_uri)
    name = options.name or job_name(entry_point)
    spec: dict[str, Any] = {
        "name": name,
        "code": {"source_uri": "", "entry_point": entry_point},  # set once packed
        "inputs": channels,
        "output_uri": options.output_uri or f"ketch://{account}/jobs/",
        "hyperparameters": dict(hyperparameters or {}),
        "environment": dict(options.environment or {}),
        "instance_type": instance_type,
        "client_token": secrets.token_hex(16),
        **extra,
    }
    if options.max_runtime_seconds is not None:
        spec["max_runtime_seconds"] = options.max_runtime_seconds
    if options.metric_definitions:
        spec["metric_definitions"] = [dict(d) for d in options.metric_definitions]
    if client is not None:
        return _submit(client, kind, account, spec, source_dir, wait, timeout, quiet)
    with Client() as default:
        return _submit(default, kind, account, spec, source_dir, wait, timeout, quiet)


def _submit(
    client: Client,
    kind: str,
    account: str,
    spec: dict[str, Any],
    source_dir: str | os.PathLike[str],
    wait: bool,
    timeout: float | None,
    quiet: bool,
) -> Job:
    jobs: Jobs = client.training_jobs if kind == "training" else client.processing_jobs
    with tempfile.TemporaryDirectory(prefix="ketch-job-") as folder:
        bundle = pack_source_dir(
            source_dir, Path(folder) / BUNDLE_NAME, entry_point=spec["code"]["entry_point"]
        )
        spec["code"]["source_uri"] = bundle_uri(account, bundle)
        jobs.spec(spec)  # checked before the upload, so a bad spec leaves no bundle behind
        client.artifacts.upload(bundle, spec["code"]["source_uri"])
    job = jobs.create(account, spec)
    if quiet:
        return job if not wait else jobs.wait(account, job.name, timeout=timeout)
    if not wait:
        _report(job)
        return job
    return _follow(jobs, job, timeout)


def _follow(jobs: Jobs, job: Job, timeout: float | None) -> Job:
    """Wait for ``job`` to end, writing its log and each change of status to stderr."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = _Shown(_report(job))
    since: str | None = None
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise wait_timeout(job, timeout or 0.0)
        pause = STATUS_SECONDS if left is None else min(STATUS_SECONDS, left)
        stream = jobs.logs(job.account, job.name, follow=True, since=since, timeout=pause)
        for text in stream:
            shown.text(text)
        since = stream.next
        job = jobs.get(job.account, job.name)
        shown.status(job)
        if job.status in FINAL and stream.complete:
            return job


class _Shown:
    """What went to stderr: log text as it came, and a line per state."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.open_line = False
        """The last log text did not end its line."""

    def text(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()
        self.open_line = not text.endswith("\n")

    def status(self, job: Job) -> None:
        if _line(job) == self.line:
            return
        if self.open_line:
            sys.stderr.write("\n")
            self.open_line = False
        self.line = _report(job)


def _line(job: Job) -> str:
    detail = f" ({job.secondary_status})" if job.secondary_status else ""
    reason = f": {job.failure_reason}" if job.failure_reason else ""
    return f"{job.kind.value} job {job.name}: {job.status.value}{detail}{reason}"


def _report(job: Job) -> str:
    """One line on stderr per state (this module is the SDK's interactive face); the line."""
    line = _line(job)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return line
