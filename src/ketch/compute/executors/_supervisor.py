"""The supervisor of one local attempt: starts the user's command, limits it, records how it ended.

:class:`~ketch.compute.executors.local.LocalExecutor` runs this file by path
(``python -I -S _supervisor.py <attempt dir>``) in its own session, so the server's death
or Ctrl-C never reaches the attempt, and a server restarted later learns the outcome from
``result.json`` alone. It imports only a few stdlib modules, because every millisecond
spent here is added to the job's start latency; it must not import ``ketch``.

Files in the attempt folder:

- ``launch.json`` (0600, written by the executor): argv, the complete environment, cwd,
  log path, limits, the timeout grace; deleted here as soon as it is read, so the job's
  environment (which may hold secrets) does not stay on disk while the job runs;
- ``running.json`` (written here once the child is forked and signals are handled);
- ``stop.json`` (written by the executor before it sends SIGTERM): the stop's grace;
- ``result.json`` (written here, atomically, as the last act): exit code, state, reason.

The child runs in its own process group inside the supervisor's session (not in the
supervisor's group): ``killpg`` then reaches the child and every grandchild that did not
leave the group, while the supervisor survives its own SIGKILL to record the result.

Signals are blocked and collected with ``sigtimedwait``, so the loop sleeps until the
child ends, a stop arrives or a deadline passes; it never polls.

Start latency: ``json`` (through ``re``) and ``signal`` (through ``enum``) would add about
18 ms to every start, as much as the interpreter's own start. So JSON is read and written
with ``_json``, the C half of ``json``, and signals come from ``_signal``, the C half of
``signal`` (plain ints instead of enums); ``typing`` is imported for the type checker only.
"""

from __future__ import annotations

import _json
import _signal as signal
import os
import resource
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RESULT_FILE = "result.json"
RUNNING_FILE = "running.json"
STOP_FILE = "stop.json"
LAUNCH_FILE = "launch.json"

ADDRESS_SPACE_FLOOR_MIB = 512
"""The smallest address-space limit given: the interpreter, its shared libraries, a few
thread stacks and malloc arenas need about this much *virtual* memory before user code
allocates anything, so a tiny instance type must not starve Python itself."""
MAX_OPEN_FILES = 65536
"""Soft and hard ``RLIMIT_NOFILE``: enough for data loaders, bounded for the machine."""
DEFAULT_STOP_GRACE = 10.0
"""Grace of a SIGTERM that came without a ``stop.json`` (someone else signalled us)."""
WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
ALIASES = {"SIGCLD", "SIGIOT", "SIGPOLL"}
SIGNAL_NAMES = {
    getattr(signal, name): name
    for name in dir(signal)
    if name.startswith("SIG") and not name.startswith("SIG_") and name not in ALIASES
}


def main(folder: str) -> int:
    path = os.path.join(folder, LAUNCH_FILE)
    launch = _read_json(path)
    # It holds the job's environment (perhaps secrets): kept in memory only from here on.
    os.unlink(path)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    child, error = _spawn(launch)
    if error is not None:
        _note(launch, error)
        _write_result(folder, {"exit_code": 127, "state": "failed", "reason": error})
        return 0
    _write_json(os.path.join(folder, RUNNING_FILE), {"pid": child, "pgid": child}, sync=False)
    status = _supervise(folder, launch, child)
    _write_result(folder, status)
    return 0


# -- starting the child --------------------------------------------------------------------


def _spawn(launch: dict[str, Any]) -> tuple[int, str | None]:
    """Fork and exec the user's argv; return its pid, or the reason it could not start.

    A close-on-exec pipe carries an exec failure back: it reads empty once exec succeeds.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child only
        os.close(read_end)
        try:
            _become_attempt(launch)
        except BaseException as exc:  # anything here means "could not start"
            message = f"could not start {launch['argv'][0]!r}: {exc}"
            os.write(write_end, message.encode(errors="replace"))
        os._exit(127)
    os.close(write_end)
    _set_group(pid)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    if chunks:
        os.waitpid(pid, 0)
        return pid, b"".join(chunks).decode(errors="replace")
    return pid, None


def _set_group(pid: int) -> None:
    # Both sides set the group, so a killpg right after fork cannot miss the child.
    try:  # noqa: SIM105 - contextlib costs a millisecond of start latency
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already exec'd (then it set it itself) or already exited


def _become_attempt(launch: dict[str, Any]) -> None:
    """In the forked child: group, files, limits, signals, then exec (never returns)."""
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(launch["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(launch["cwd"])
    _apply_limits(launch)
    # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions and the mask survive exec.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.execvpe(launch["argv"][0], launch["argv"], launch["env"])  # noqa: S606 - no shell, by design


def _apply_limits(launch: dict[str, Any]) -> None:
    """Address space, open files, no core dumps, CPU affinity; see the constants."""
    if launch["gpus"] == 0:
        # GPU runtimes reserve far more address space than they use: no RLIMIT_AS there.
        limit = max(launch["memory_mib"], ADDRESS_SPACE_FLOOR_MIB) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    available = sorted(os.sched_getaffinity(0))
    cpus = launch["cpus"]
    if 0 < cpus < len(available):
        # Start at a pid-derived offset so concurrent attempts spread over the machine.
        offset = os.getpid() % len(available)
        chosen = {available[(offset + i) % len(available)] for i in range(cpus)}
        os.sched_setaffinity(0, chosen)


# -- supervising ---------------------------------------------------------------------------


def _supervise(folder: str, launch: dict[str, Any], child: int) -> dict[str, Any]:
    """Wait for the child, a stop or the runtime limit; return the result to record."""
    deadline = time.monotonic() + launch["max_runtime_seconds"]
    kill_at: float | None = None
    outcome: str | None = None
    if os.path.exists(os.path.join(folder, STOP_FILE)):
        # A stop that came before running.json existed was not signalled: honour it now.
        outcome, kill_at = "stopped", _terminate(launch, child, _stop_grace(folder))
    while True:
        ended = _exited(child)
        if ended is not None:
            return _finish(child, ended, outcome)
        received = _next_signal(kill_at if outcome is not None else deadline)
        if received is None or received.si_signo == signal.SIGCHLD:
            now = time.monotonic()
            if outcome is None and now >= deadline:
                _note(launch, f"ran past {launch['max_runtime_seconds']} s; stopping it")
                outcome, kill_at = "timed_out", _terminate(launch, child, launch["grace"])
            elif kill_at is not None and now >= kill_at:
                _note(launch, "still running after the grace period; killing it")
                _signal_group(child, signal.SIGKILL)
                kill_at = None
            continue
        if _exited(child) is not None:
            continue  # it ended before the stop arrived: its own outcome stands
        grace = _stop_grace(folder)
        outcome = outcome or "stopped"
        deadline_kill = _terminate(launch, child, grace)
        kill_at = deadline_kill if kill_at is None else min(kill_at, deadline_kill)


def _next_signal(wake: float | None) -> signal.struct_siginfo | None:
    """The next watched signal, or None once ``wake`` (monotonic) passes."""
    if wake is None:  # already SIGKILLed: only its end is left to wait for
        return signal.sigwaitinfo(WATCHED)
    return signal.sigtimedwait(WATCHED, max(wake - time.monotonic(), 0.0))


def _terminate(launch: dict[str, Any], child: int, grace: float) -> float:
    """SIGTERM the child's group; return when to SIGKILL it."""
    _note(launch, f"sending SIGTERM; SIGKILL follows in {grace:g} s")
    _signal_group(child, signal.SIGTERM)
    return time.monotonic() + grace


def _signal_group(child: int, signum: int) -> None:
    try:  # noqa: SIM105 - see _set_group
        os.killpg(child, signum)
    except ProcessLookupError:
        pass  # the whole group has ended


def _exited(child: int) -> os.waitid_result | None:
    """The child's ``waitid`` result if it has ended (not yet reaped), else None."""
    return os.waitid(os.P_PID, child, os.WEXITED | os.WNOHANG | os.WNOWAIT)


def _finish(child: int, ended: os.waitid_result, outcome: str | None) -> dict[str, Any]:
    """Kill what the child left in its group, reap it, and describe how it ended.

    The group is killed before the child is reaped, so its id cannot have been reused.
    """
    _signal_group(child, signal.SIGKILL)
    os.waitpid(child, 0)
    if ended.si_code == os.CLD_EXITED:
        code, reason = ended.si_status, f"exited with status {ended.si_status}"
    else:
        code = 128 + ended.si_status
        name = SIGNAL_NAMES.get(ended.si_status, str(ended.si_status))
        reason = f"killed by signal {name}"
    if outcome == "stopped":
        return {"exit_code": code, "state": "stopped", "reason": f"stopped on request; {reason}"}
    if outcome == "timed_out":
        return {"exit_code": code, "state": "timed_out", "reason": f"ran too long; {reason}"}
    return {"exit_code": code, "state": "succeeded" if code == 0 else "failed", "reason": reason}


def _stop_grace(folder: str) -> float:
    try:
        return float(_read_json(os.path.join(folder, STOP_FILE))["grace_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_STOP_GRACE


# -- files ---------------------------------------------------------------------------------


def _note(launch: dict[str, Any], message: str) -> None:
    """Append a ``[ketch]`` line to the attempt's log, where the user looks first."""
    try:
        fd = os.open(launch["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return
    with os.fdopen(fd, "a") as log:
        log.write(f"[ketch] {message}\n")


class _Decoding:
    """The settings ``_json.make_scanner`` reads (those of a default ``json.JSONDecoder``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, str] = {}


# The stub wants a JSONDecoder; the C scanner only reads the attributes above.
_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as file:
        text = file.read()
    value, _ = _scan(text.strip(), 0)
    return value


def _dumps(data: dict[str, Any]) -> str:
    """JSON for a flat dict of str, int, float, None values (all this module writes)."""
    items = (f"{_json.encode_basestring_ascii(k)}: {_value(v)}" for k, v in data.items())
    return "{" + ", ".join(items) + "}"


def _value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    return repr(value)


def _write_result(folder: str, result: dict[str, Any]) -> None:
    _write_json(os.path.join(folder, RESULT_FILE), result, sync=True)


def _write_json(path: str, data: dict[str, Any], *, sync: bool) -> None:
    """Temp file, (fsync), rename: a reader sees the whole file or none of it.

    The folder is not fsynced: that would only keep the rename through a power loss, after
    which the attempt is lost anyway, and it costs milliseconds on every attempt's end.
    """
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(_dumps(data))
        if sync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)


if __name__ == "__main__":
    # os._exit skips interpreter finalisation (several ms that ``wait`` would see); every
    # file was closed above and nothing is buffered.
    os._exit(main(sys.argv[1]))
