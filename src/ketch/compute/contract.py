"""The SageMaker job contract: the job root, the process's argv and environment, the outputs.

Users' SageMaker training and processing scripts run unchanged, so a job sees what the
SageMaker training toolkit (``sagemaker_training.environment``) gives it in a container.
Layer: a service module (stdlib and ``ketch.core`` only); it never reads the server's own
environment, which arrives as the ``base`` mapping of :func:`environment`.

**Layout.** A job root holds ``opt/ml/`` (a mirror of ``/opt/ml``) next to the job's
HOME and TMPDIR and ketch's staging folder, which are not part of ``/opt/ml``::

    <root>/opt/ml/code/                      the source bundle, extracted
    <root>/opt/ml/input/config/              hyperparameters.json, inputdataconfig.json,
                                             resourceconfig.json
    <root>/opt/ml/input/data/<channel>/      training channels
    <root>/opt/ml/model/                     -> model.tar.gz on exit 0
    <root>/opt/ml/output/data/               -> output.tar.gz on exit 0
    <root>/opt/ml/output/failure             the failure reason, written by the job
    <root>/opt/ml/output/metrics.jsonl       ``ketch.log_metric`` points, read as written
    <root>/opt/ml/output/intermediate/  <root>/opt/ml/checkpoints/
    <root>/opt/ml/processing/{input,output}/<name>/   processing jobs
    <root>/opt/ml/config/                    processing jobs' resourceconfig.json and
                                             processingjobconfig.json
    <root>/home/  <root>/tmp/                HOME and TMPDIR
    <root>/outputs/                          packed archives, for the uploader

A container executor can mount ``<root>/opt/ml`` at ``/opt/ml`` (building the
environment from paths re-based there) and leave the staging folder out of the job's
reach. On the local executor the paths are
``<root>/opt/ml/...``: a script that hard-codes ``/opt/ml`` cannot work there, while one
that reads ``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>`` (or ``KETCH_*``) works everywhere.
``SAGEMAKER_BASE_DIR`` points the toolkit itself, if the job imports it, at the mirror.

**Names, as the toolkit forms them** (``mapping.to_env_vars``): ``SM_`` plus the key
upper-cased and nothing else replaced, so hyperparameter ``learning-rate`` is
``SM_HP_LEARNING-RATE`` and channel ``train`` is ``SM_CHANNEL_TRAIN``. Values that are
strings go as they are; everything else as compact JSON with sorted keys (``10``,
``0.1``, ``true``, ``["algo-1"]``). Script arguments follow ``mapping.to_cmd_args``:
sorted names, ``--name`` (``-n`` for one-letter names) and ``str(value)`` (so ``True``).
Hyperparameters named ``sagemaker_*`` (and the toolkit's own few) are framework
settings, kept out of the arguments and of ``SM_HPS`` as the toolkit does.
``hyperparameters.json`` holds every value as a JSON-encoded string (what the SageMaker
Python SDK sends), so the toolkit's reader gets the typed values back.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from ketch.compute import _sagemaker
from ketch.core.archives import pack_folder
from ketch.core.errors import InvalidInput
from ketch.core.instances import InstanceType
from ketch.core.job_rules import (
    HyperparameterValue,
    check_names,
    validate_hyperparameters,
    validate_user_environment,
)

__all__ = [
    "HyperparameterValue",
    "JobContract",
    "JobKind",
    "JobPaths",
    "Outputs",
    "argv",
    "collect",
    "environment",
    "lay_out",
    "validate_hyperparameters",
    "validate_user_environment",
]

JobKind = Literal["training", "processing"]

FAILURE_LIMIT = 4096

_SCRIPT = re.compile(r"([A-Za-z0-9_\-][A-Za-z0-9_.\-]*/)*[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", re.ASCII)
_FUNCTION = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)

ALLOWED_BASE = ("PATH", "LANG", "LC_ALL", "TZ")
"""The only variables taken from the server's environment; nothing secret is among them."""
_THREAD_CAPS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _check_entry_point(entry_point: str) -> None:
    if _FUNCTION.fullmatch(entry_point):
        return
    parts = entry_point.split("/")
    if (
        not _SCRIPT.fullmatch(entry_point)
        or any(part in {".", ".."} for part in parts)
        or not entry_point.endswith((".py", ".sh"))
    ):
        raise InvalidInput(
            f"entry point {entry_point[:100]!r} is not allowed; use a .py or .sh script "
            "relative to the code folder (train.py, src/train.py) or package.module:function"
        )


@dataclass(frozen=True)
class JobContract:
    """What a job runs with, checked when built: an invalid contract cannot exist."""

    job_name: str
    kind: JobKind
    entry_point: str
    """``train.py`` / ``src/train.py`` / ``run.sh`` in the code folder, or
    ``package.module:function`` importable from it."""
    instance: InstanceType
    instance_count: int = 1
    hyperparameters: Mapping[str, HyperparameterValue] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    """Training channels; for processing jobs, the input names."""
    processing_outputs: tuple[str, ...] = ()
    user_environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < len(self.job_name) <= 256 or not self.job_name.isprintable():
            raise InvalidInput("job name must be 1-256 printable characters")
        if self.kind not in ("training", "processing"):
            raise InvalidInput(f"job kind {self.kind!r} is unknown; use training or processing")
        if self.kind == "training" and self.processing_outputs:
            raise InvalidInput("processing outputs are for processing jobs only")
        if not 1 <= self.instance_count <= 100:
            raise InvalidInput("instance count must be between 1 and 100")
        _check_entry_point(self.entry_point)
        check_names("channel" if self.kind == "training" else "input", self.channels)
        check_names("output", self.processing_outputs)
        hyperparameters = validate_hyperparameters(self.hyperparameters)
        environment = validate_user_environment(self.user_environment)
        object.__setattr__(self, "hyperparameters", MappingProxyType(hyperparameters))
        object.__setattr__(self, "user_environment", MappingProxyType(environment))

    @property
    def user_hyperparameters(self) -> dict[str, HyperparameterValue]:
        """The hyperparameters the user's code receives (``sagemaker_*`` ones set aside)."""
        return {k: v for k, v in self.hyperparameters.items() if not _sagemaker.reserved(k)}


@dataclass(frozen=True)
class JobPaths:
    """Where everything of one job lives (see the module docstring for the tree)."""

    root: Path
    kind: JobKind
    channels: tuple[str, ...]
    processing_outputs: tuple[str, ...]

    @property
    def ml(self) -> Path:
        """The mirror of ``/opt/ml``."""
        return self.root / "opt" / "ml"

    @property
    def code(self) -> Path:
        return self.ml / "code"

    @property
    def input(self) -> Path:
        return self.ml / "input"

    @property
    def input_config(self) -> Path:
        return self.input / "config"

    def channel(self, name: str) -> Path:
        return self.input / "data" / name

    @property
    def model(self) -> Path:
        return self.ml / "model"

    @property
    def output(self) -> Path:
        return self.ml / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def output_intermediate(self) -> Path:
        return self.output / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    @property
    def metrics_file(self) -> Path:
        """JSON lines appended by ``ketch.log_metric``; never packed into an output."""
        return self.output / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.ml / "checkpoints"

    @property
    def processing_config(self) -> Path:
        return self.ml / "config"

    def processing_input(self, name: str) -> Path:
        return self.ml / "processing" / "input" / name

    def processing_output(self, name: str) -> Path:
        return self.ml / "processing" / "output" / name

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def staging(self) -> Path:
        """Packed outputs; outside ``opt/ml``, so a container never sees it."""
        return self.root / "outputs"

    def folders(self) -> list[Path]:
        """Every folder :func:`lay_out` creates, parents first."""
        found = [self.root, self.root / "opt", self.ml, self.code, self.input, self.output]
        found += [self.home, self.tmp]
        if self.kind == "training":
            found += [self.input_config, self.input / "data"]
            found += [self.channel(c) for c in self.channels]
            found += [self.model, self.output_data, self.output_intermediate, self.checkpoints]
        else:
            found += [self.processing_config, self.ml / "processing"]
            found += [self.ml / "processing" / "input", self.ml / "processing" / "output"]
            found += [self.processing_input(n) for n in self.channels]
            found += [self.processing_output(n) for n in self.processing_outputs]
        return found


def lay_out(root: Path, contract: JobContract) -> JobPaths:
    """Create the job root (every folder 0700) and write the config files SageMaker writes.

    ``root`` must not exist yet or be empty, so a job never inherits another's files.
    """
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InvalidInput(f"job root {root} already exists and is not empty")
    paths = JobPaths(root, contract.kind, contract.channels, contract.processing_outputs)
    for folder in paths.folders():
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    if contract.kind == "training":
        config = paths.input_config
        _write_json(config / "hyperparameters.json", _sagemaker.hyperparameters_file(contract))
        _write_json(config / "inputdataconfig.json", _sagemaker.input_data_config(contract))
        _write_json(config / "resourceconfig.json", _sagemaker.resource_config(contract))
    else:
        config = paths.processing_config
        _write_json(config / "resourceconfig.json", _sagemaker.resource_config(contract))
        _write_json(
            config / "processingjobconfig.json", _sagemaker.processing_job_config(paths, contract)
        )
    return paths


def _write_json(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def environment(
    paths: JobPaths,
    contract: JobContract,
    *,
    base: Mapping[str, str],
    python_path_entries: tuple[str, ...] = (),
) -> dict[str, str]:
    """The job's complete environment, built from nothing.

    From ``base`` (the server's environment) only ``PATH``, ``LANG``, ``LC_ALL`` and ``TZ``
    pass, so no server secret (``KETCH_DATABASE_URL``, ``AWS_*``) reaches user code.
    Then HOME and TMPDIR inside the root, ``PYTHONPATH`` (the code folder first, so its
    modules import), thread caps from the instance's CPUs, ``PYTHONUNBUFFERED=1`` so logs
    stream, the toolkit's ``SM_*`` variables (training jobs), ``KETCH_*`` equivalents, and
    finally the user's variables, which :class:`JobContract` has kept off all of these
    except the thread caps and ``PYTHONUNBUFFERED``.
    """
    env = {name: base[name] for name in ALLOWED_BASE if name in base}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(paths.home)
    env["TMPDIR"] = str(paths.tmp)
    env["PYTHONPATH"] = os.pathsep.join((str(paths.code), *python_path_entries))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(dict.fromkeys(_THREAD_CAPS, str(max(contract.instance.cpus, 1))))
    if contract.kind == "training":
        env.update(_sagemaker.training_variables(paths, contract))
    env.update(_ketch_variables(paths, contract))
    env.update(contract.user_environment)
    return env


def _ketch_variables(paths: JobPaths, contract: JobContract) -> dict[str, str]:
    hps = json.dumps(contract.user_hyperparameters, sort_keys=True, separators=(",", ":"))
    env = {
        "KETCH_JOB_NAME": contract.job_name,
        "KETCH_JOB_KIND": contract.kind,
        "KETCH_JOB_DIR": str(paths.ml),
        "KETCH_CODE_DIR": str(paths.code),
        "KETCH_OUTPUT_DIR": str(paths.output),
        "KETCH_FAILURE_FILE": str(paths.failure_file),
        "KETCH_METRICS_FILE": str(paths.metrics_file),
        "KETCH_HPS": hps,
        "KETCH_INSTANCE_TYPE": contract.instance.name,
        "KETCH_NUM_CPUS": str(contract.instance.cpus),
        "KETCH_NUM_GPUS": str(contract.instance.gpus),
        "KETCH_MEMORY_MIB": str(contract.instance.memory_mib),
    }
    if contract.kind == "training":
        env["KETCH_MODEL_DIR"] = str(paths.model)
        env["KETCH_OUTPUT_DATA_DIR"] = str(paths.output_data)
        env["KETCH_CHECKPOINT_DIR"] = str(paths.checkpoints)
        env["KETCH_CHANNELS"] = json.dumps(sorted(contract.channels))
        env.update({f"KETCH_CHANNEL_{c.upper()}": str(paths.channel(c)) for c in contract.channels})
    else:
        for name in contract.channels:
            env[f"KETCH_PROCESSING_INPUT_{name.upper()}"] = str(paths.processing_input(name))
        for name in contract.processing_outputs:
            env[f"KETCH_PROCESSING_OUTPUT_{name.upper()}"] = str(paths.processing_output(name))
    return env


def argv(python: str, paths: JobPaths, contract: JobContract) -> tuple[str, ...]:
    """The job's argv, run without a shell: every hyperparameter value is one item.

    - ``*.py``: ``(python, <code>/<script>, --name, value, ...)`` as the toolkit runs it;
    - ``*.sh``: ``("/bin/sh", <code>/<script>, --name, value, ...)``: the script is read
      by the shell, the values still arrive as ``$1``, ``$2``... and are never parsed;
    - ``package.module:function``: ``(python, "-c", <runner>, target, hps, failure)``,
      where the runner (``ketch/compute/_entry.py``) calls the function with the typed
      hyperparameters as keyword arguments.

    :class:`InvalidInput` when the script is missing from the code folder or leaves it.
    """
    if _FUNCTION.fullmatch(contract.entry_point):
        hps = json.dumps(contract.user_hyperparameters)
        target = contract.entry_point
        return (python, "-c", _runner_source(), target, hps, str(paths.failure_file))
    script = _script_path(paths.code, contract.entry_point)
    interpreter = "/bin/sh" if script.suffix == ".sh" else python
    return (interpreter, str(script), *_sagemaker.cmd_args(contract.user_hyperparameters))


def _script_path(code: Path, entry_point: str) -> Path:
    script = code / entry_point
    try:
        inside = script.resolve(strict=True).is_relative_to(code.resolve(strict=True))
    except OSError:
        inside = False
    if not inside or not script.is_file():
        raise InvalidInput(
            f"entry point {entry_point!r} is not a file in the source bundle; "
            "check its path relative to the bundle's top folder"
        )
    return script


def _runner_source() -> str:
    return Path(__file__).with_name("_entry.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Outputs:
    """What a finished attempt left behind, for the uploader and the job record."""

    failure_reason: str | None
    """The text of ``output/failure`` (first 4 KiB), whatever the exit status."""
    model_archive: Path | None = None
    """``model.tar.gz`` (training, exit 0)."""
    output_archive: Path | None = None
    """``output.tar.gz`` of ``output/data`` (training, exit 0)."""
    processing_outputs: Mapping[str, Path] = field(default_factory=dict)
    """Output name to folder, uploaded as they are (processing, exit 0)."""


def collect(paths: JobPaths, *, exit_code: int) -> Outputs:
    """Read the failure reason and, on exit 0, pack or list the outputs.

    Everything in the root was writable by the job, so nothing there is trusted: an
    output folder replaced by a link, or a link inside it, is refused with
    :class:`InvalidInput` (``UnsafeArchive`` for links inside), never followed. Call it
    once the attempt's processes are all gone (the executor's job), or a lingering one
    could swap a folder between the check and the packing.
    """
    reason = _read_failure(paths.failure_file)
    if exit_code != 0:
        return Outputs(failure_reason=reason)
    if paths.kind == "processing":
        outputs = {n: _real_folder(paths.processing_output(n)) for n in paths.processing_outputs}
        return Outputs(failure_reason=reason, processing_outputs=MappingProxyType(outputs))
    paths.staging.mkdir(mode=0o700, exist_ok=True)  # collecting again replaces the archives
    _real_folder(paths.staging)  # a job on the local executor could have planted a link
    model = paths.staging / "model.tar.gz"
    output = paths.staging / "output.tar.gz"
    pack_folder(_real_folder(paths.model), model)
    pack_folder(_real_folder(paths.output_data), output)
    return Outputs(failure_reason=reason, model_archive=model, output_archive=output)


def _real_folder(folder: Path) -> Path:
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        raise InvalidInput(f"the job removed its {folder.name}/ folder") from None
    if not stat.S_ISDIR(mode):
        raise InvalidInput(f"the job replaced its {folder.name}/ folder with a link or file")
    return folder


def _read_failure(path: Path) -> str | None:
    """At most 4 KiB of a regular file; a link, FIFO or device is not read (a FIFO would
    block the reader, a link could point at any file the server can read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        text = handle.read(FAILURE_LIMIT).decode("utf-8", errors="replace").strip()
    return text or None
