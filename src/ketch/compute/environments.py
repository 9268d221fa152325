"""Cached virtual environments for the ``requirements.txt`` at the root of a job's bundle.

SageMaker's training toolkit installs ``requirements.txt`` from the top of the source
folder before it runs the entry point; ketch does the same, once per distinct set of
requirements: :meth:`Environments.python_for` returns the interpreter a job runs with,
the server's own when the bundle brings no requirements, else the ``bin/python`` of a
virtual environment under ``root/<key>/``, built on first use and reused afterwards
with a stat or two (no pip, no subprocess).

**The key** is a SHA-256 of everything that decides what ends up installed: the
requirements' text (comments, blank lines and spacing normalised away), the content of
every local file or folder the text names (``./wheels/x.whl``, ``.``, ``-r other.txt``;
paths named only inside an included file are not followed), the pip arguments from
settings and the job's ``PIP_*`` variables, the server interpreter (version, base
executable, site-packages) and a *scope*, the job's account. Environments are not
shared between accounts: on the local executor a job runs as the server's user and could
change the packages of the environment it runs in, which must not reach another team.

**Isolation and the server's packages.** The environment is made from the base
interpreter (``python -m venv`` run from the server's own venv creates it on
``sys._base_executable``), without pip, and the server's pip installs into it
(``pip --python <env>/bin/python``, pip >= 22.3). pip sees only the empty environment,
so everything the requirements resolve to is installed there: the environment depends
on its key alone, not on what the server happened to have. Only then is
``zzz-ketch-server.pth`` added, which calls ``site.addsitedir`` on the server's
site-packages, so a job still imports ``ketch`` (the SDK) and the server's packages,
*after* its own: the user's pins win on conflicts. ``--system-site-packages`` does not do
this: it adds the *base* interpreter's site-packages, not those of the venv the server
runs from, where ``ketch`` lives. ``addsitedir`` (not a bare path line) also runs the
server's own ``.pth`` files, which editable installs need; the name sorts last, so
paths that the user's packages add through their ``.pth`` files come first too.

**Building.** One builder per key: an ``fcntl.flock`` on ``root/<key>.lock`` (per open
file, so it also separates threads of one process); a second job with the same key
waits, renewing its lease, then reuses the first one's environment. A virtual
environment cannot be moved once built (console scripts carry its absolute path in
their ``#!`` line), so it is built in place and ``.ketch-ready`` is written last: a
folder without it is a failed or interrupted build, removed by the next builder, and is
never returned. pip runs without a shell and without input, in its own session (killed
with its children on timeout or a lost lease), with the job's scrubbed environment, in
the code folder (relative paths work as with the toolkit), its output appended to the
job's log. A failed install is the user's error (:class:`InvalidInput`, with pip's
``ERROR:`` lines); a broken interpreter or missing pip is the platform's
(:class:`EnvironmentBuildError`).

**Eviction.** ``.ketch-ready``'s modification time is the last use (renewed at most
hourly); :meth:`Environments.evict` removes environments unused for ``ttl_days``.

Layer: a service module (stdlib and ``ketch.core`` only); settings arrive as arguments.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ketch.compute._requirements import REQUIREMENTS_FILE, local_digests, requirement_lines
from ketch.core.errors import InvalidInput

__all__ = ["REQUIREMENTS_FILE", "EnvironmentBuildError", "Environments"]

logger = logging.getLogger(__name__)

READY_FILE = ".ketch-ready"
SERVER_PTH = "zzz-ketch-server.pth"
LAYOUT = 1
"""Part of every key: raise it when the way environments are built changes."""
MIN_PIP = (22, 3)
"""The first pip with ``--python``."""
TOUCH_AFTER_SECONDS = 3600.0
LOCK_POLL_SECONDS = 0.1
TAIL_LINES = 15
TAIL_CHARS = 800

_KEY = re.compile(r"[0-9a-f]{32}")
_PROBE = """\
import json, os, site, sys
try:
    import pip
    pip_version = pip.__version__
except Exception:
    pip_version = None
print(json.dumps({
    "version": sys.version,
    "base": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
    "site": [p for p in site.getsitepackages() if os.path.isdir(p)],
    "pip": pip_version,
}))
"""


class EnvironmentBuildError(Exception):
    """ketch could not make an environment, whatever the requirements (a platform error)."""


@dataclass(frozen=True)
class _Interpreter:
    """What the key and the ``.pth`` need to know of the server's interpreter."""

    version: str
    base: str
    site_packages: tuple[str, ...]


class Environments:
    """Virtual environments for jobs' requirements under ``root``; see the module docstring.

    ``python`` is the interpreter jobs run with when they bring no requirements (the
    server's own); environments are made from it and its pip installs into them.
    ``pip_args`` are added to every ``pip install`` (``--index-url``, ``--find-links``,
    ``--no-index``...); ``timeout_seconds`` bounds one install; ``ttl_days`` is how long
    an unused environment is kept by :meth:`evict`.
    """

    def __init__(
        self,
        root: Path,
        *,
        python: str,
        pip_args: Sequence[str] = (),
        timeout_seconds: float = 1800.0,
        ttl_days: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.root = root
        self.python = python
        self.pip_args = tuple(pip_args)
        self.timeout_seconds = timeout_seconds
        self.ttl_days = ttl_days
        self.poll_seconds = poll_seconds
        self._interpreter: _Interpreter | None = None
        self._probe_lock = threading.Lock()

    def python_for(
        self,
        code: Path,
        *,
        env: Mapping[str, str],
        log: Path,
        tick: Callable[[], None],
        scope: str = "",
        on_build: Callable[[], None] | None = None,
    ) -> str:
        """The interpreter for the code folder ``code``: :attr:`python` without a
        ``requirements.txt`` at its top, else an environment's, built if missing.

        ``env`` is the job's (scrubbed) environment, which pip runs with; ``log`` is the
        job's log, to which a build appends pip's output; ``tick`` is called about every
        ``poll_seconds`` while a build runs or is awaited (to renew the job's lease; what
        it raises ends the build, which leaves nothing behind); ``scope`` separates
        environments (the account); ``on_build`` is called once a build is certain.
        :class:`InvalidInput` when the requirements cannot be read or installed.
        """
        lines = requirement_lines(code / REQUIREMENTS_FILE)
        if not lines:
            return self.python
        key = self._key(code, lines, env, scope)
        folder = self.root / key
        python = str(folder / "bin" / "python")
        if _reuse(folder):
            return python
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        waited = time.monotonic()
        with _exclusive(self.root / f"{key}.lock", tick) as lock:
            if _reuse(folder):
                seconds = time.monotonic() - waited
                _note(log, f"reusing environment {key}, built by another job ({seconds:.0f} s)")
                return python
            if on_build is not None:
                on_build()
            self._build(folder, code, env, log, tick, lock)
        return python

    def evict(self) -> int:
        """Remove the environments unused for ``ttl_days`` (and builds interrupted that
        long ago); returns how many were removed. One being built or awaited is skipped."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - self.ttl_days * 86400
        removed = 0
        for lock in sorted(self.root.glob("*.lock")):
            key = lock.stem
            if not _KEY.fullmatch(key) or _last_used(self.root / key) >= cutoff:
                continue
            fd = _try_lock(lock)
            if fd is None:
                continue
            try:
                folder = self.root / key
                if _last_used(folder) >= cutoff:  # reused while we looked
                    continue
                (folder / READY_FILE).unlink(missing_ok=True)  # not usable from here on
                shutil.rmtree(folder, ignore_errors=True)
                lock.unlink()  # waiters notice the new inode and lock the next file
                removed += 1
                logger.info("environment %s: evicted (unused for %g days)", key, self.ttl_days)
            finally:
                os.close(fd)
        return removed

    # -- keys -------------------------------------------------------------------------------

    def _key(self, code: Path, lines: list[str], env: Mapping[str, str], scope: str) -> str:
        interpreter = self._probe()
        material = {
            "layout": LAYOUT,
            "python": [interpreter.version, interpreter.base, *interpreter.site_packages],
            "pip_args": self.pip_args,
            "pip_env": sorted((k, v) for k, v in env.items() if k.upper().startswith("PIP_")),
            "scope": scope,
            "requirements": lines,
            "local": local_digests(code, lines),
        }
        text = json.dumps(material, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _probe(self) -> _Interpreter:
        """Ask :attr:`python` (once) for its version, base executable, site-packages and
        pip; :class:`EnvironmentBuildError` when it cannot install (no pip >= 22.3)."""
        with self._probe_lock:
            if self._interpreter is not None:
                return self._interpreter
            result = _run([self.python, "-I", "-c", _PROBE], "ask the interpreter")
            try:
                data = json.loads(result)
                pip = data["pip"]
                found = _Interpreter(data["version"], data["base"], tuple(data["site"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise EnvironmentBuildError(f"{self.python} answered {result[:200]!r}") from exc
            if pip is None or _version(pip) < MIN_PIP:
                raise EnvironmentBuildError(
                    f"{self.python} has pip {pip or 'missing'}; requirements.txt needs "
                    f"pip >= {'.'.join(map(str, MIN_PIP))} in the server's environment"
                )
            self._interpreter = found
            return found

    # -- building ---------------------------------------------------------------------------

    def _build(
        self,
        folder: Path,
        code: Path,
        env: Mapping[str, str],
        log: Path,
        tick: Callable[[], None],
        lock: int,
    ) -> None:
        """Build the environment in ``folder`` (holding its ``lock``), ready marker last."""
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted build
        started = time.monotonic()
        try:
            _run([self.python, "-m", "venv", "--without-pip", str(folder)], "create a venv")
            self._install(folder, code, env, log, tick, lock)
            sites = list((folder / "lib").glob("python*/site-packages"))
            if len(sites) != 1:
                raise EnvironmentBuildError(f"no single site-packages folder in {folder}")
            lines = [f"import site; site.addsitedir({p!r})\n" for p in self._probe().site_packages]
            (sites[0] / SERVER_PTH).write_text("".join(lines), encoding="utf-8")
            (folder / READY_FILE).write_text(f"built {time.time():.0f}\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        _note(log, f"environment {folder.name} ready ({seconds:.1f} s)")
        logger.info("environment %s: built in %.1f s", folder.name, seconds)

    def _install(
        self,
        folder: Path,
        code: Path,
        env: Mapping[str, str],
        log: Path,
        tick: Callable[[], None],
        lock: int,
    ) -> None:
        """Run pip; it inherits ``lock``, so if this process dies, pip (in a session of its
        own, out of reach of the signal) still holds the lock: the next builder waits for it
        to end instead of clearing the folder under it."""
        argv = [
            self.python,
            "-m",
            "pip",
            "--python",  # pip runs in the new environment; it needs no pip of its own
            str(folder / "bin" / "python"),
            "install",
            "--no-input",
            "--disable-pip-version-check",
            *self.pip_args,
            "--requirement",
            REQUIREMENTS_FILE,
        ]
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _open_log(log) as out:
            out.write(f"[ketch] installing {REQUIREMENTS_FILE} into {folder.name}\n".encode())
            out.flush()
            start = out.tell()
            process = subprocess.Popen(
                argv,
                cwd=code,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a kill reaches the builds pip starts
                pass_fds=(lock,),
            )
            status = _wait(process, self.timeout_seconds, self.poll_seconds, tick)
        if status is None:
            raise InvalidInput(
                f"installing {REQUIREMENTS_FILE} took longer than {self.timeout_seconds:g} s; "
                "pin versions that have wheels, or ask an administrator to raise "
                "jobs.pip_timeout_seconds"
            )
        if status != 0:
            tail = _tail(log, start)
            raise InvalidInput(
                f"pip could not install {REQUIREMENTS_FILE} (exit status {status}): {tail}"
            )


# -- processes, files and locks --------------------------------------------------------------


def _run(argv: list[str], what: str) -> str:
    """Run a short helper command (no shell, nothing of the server's environment)."""
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentBuildError(f"could not {what} with {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip()[-TAIL_CHARS:]
        raise EnvironmentBuildError(f"could not {what} with {argv[0]}: {output}")
    return done.stdout.decode()


def _wait(
    process: subprocess.Popen[bytes], timeout: float, poll: float, tick: Callable[[], None]
) -> int | None:
    """The exit status, or ``None`` past ``timeout``; the process group is killed unless
    it exited on its own (also when ``tick`` raises)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                return process.wait(timeout=min(poll, left))
            except subprocess.TimeoutExpired:
                tick()
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _open_log(log: Path) -> Iterator[BinaryIO]:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "ab") as handle:
        yield handle


def _note(log: Path, message: str) -> None:
    """Append a ``[ketch]`` line to the job's log, as the executor's supervisor does."""
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _open_log(log) as out:
        out.write(f"[ketch] {message}\n".encode())


def _tail(log: Path, start: int) -> str:
    """pip's ``ERROR:`` lines after ``start`` in the log, else its last lines."""
    with open(log, "rb") as handle:
        handle.seek(start)
        lines = handle.read().decode(errors="replace").splitlines()
    errors = [line for line in lines if line.startswith("ERROR:")]
    shown = (errors or [line for line in lines if line.strip()])[-TAIL_LINES:]
    text = " ".join(line.strip() for line in shown) or "no output"
    return text[-TAIL_CHARS:]


def _reuse(folder: Path) -> bool:
    """Whether ``folder`` holds a finished environment; marks it used (at most hourly)."""
    marker = folder / READY_FILE
    try:
        used = marker.stat().st_mtime
    except FileNotFoundError:
        return False
    if time.time() - used > TOUCH_AFTER_SECONDS:
        try:
            os.utime(marker)
        except FileNotFoundError:  # evicted this instant
            return False
    return True


def _last_used(folder: Path) -> float:
    """When the environment was last used; for a build that never finished, when it
    started; ``-inf`` when there is no folder at all (only a lock file is left)."""
    for path in (folder / READY_FILE, folder):
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            continue
    return float("-inf")


@contextmanager
def _exclusive(path: Path, tick: Callable[[], None]) -> Iterator[int]:
    """Hold the lock file ``path`` (its descriptor), calling ``tick`` while another
    holds it."""
    while True:
        fd = _try_lock(path)
        if fd is not None:
            break
        tick()
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield fd
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive ``flock`` on ``path``, or ``None`` if another
    holds it. A lock file removed (by :meth:`Environments.evict`) after we opened it is
    not the lock any more, so the lock counts only if ``path`` is still the same file."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        held = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (
            held.st_dev,
            held.st_ino,
        ):
            return fd
        os.close(fd)


def _version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", text)[:2]
    return tuple(int(n) for n in numbers)
