"""Job logs: where each attempt's output lives, and serving it with secrets masked.

Each attempt's standard output and error are appended by the executor to
``<roots>/<job id>/logs/attempt-<n>.log``. :func:`open_job_log` resolves a job (raising
:class:`NotFound` or :class:`InvalidInput` before anything is served) and returns a
:class:`JobLog`, whose :meth:`JobLog.records` reads the attempts in order, each entered
with a header line, in pieces of at most 64 KiB (never the whole file), and, when
following, polls for new output until the job ends.

**Positions.** ``next`` in each record is a cursor ``<attempt>:<byte offset>`` into the
raw log (the first byte not yet served); passing it back as ``since`` resumes exactly
there, so a client whose connection dropped loses and repeats nothing.

**Secrets.** The values of the job's ``environment`` (those of 4 characters or more)
are replaced by ``***`` in everything served. A value may arrive split over two reads,
so the last ``len(longest value) - 1`` bytes of a running attempt's log are held back
until more follows (or the attempt ends). Logs live on the runner's disk: the API
serves them when it shares that disk (embedded mode, or a shared volume).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ketch.compute.queue import FINAL
from ketch.compute.service import job_row
from ketch.compute.tables import JobRow
from ketch.core.errors import InvalidInput
from ketch.schemas.jobs import JobKind, JobStatus, LogRecord
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "POLL_SECONDS",
    "JobLog",
    "Masker",
    "log_path",
    "open_job_log",
    "roots_dir",
]

logger = logging.getLogger(__name__)

MASK = b"***"
MIN_SECRET = 4
"""Shorter values are not masked: masking ``1`` or ``yes`` would shred every log."""
CHUNK = 64 * 1024
POLL_SECONDS = 0.2
"""How long a follower waits when nothing is new."""
_LEADS = {2: (5, 0b110), 3: (4, 0b1110), 4: (3, 0b11110)}
"""Length of a UTF-8 character by its lead byte: (shift, bits) such that lead >> shift == bits."""
_CURSOR = re.compile(r"([1-9][0-9]{0,8}):([0-9]{1,18})")


def roots_dir(jobs_dir: Path) -> Path:
    """Where the runner keeps job roots and logs, below the jobs folder
    (``KetchSettings.resolved_jobs_dir``). The server builds its runner there and the API
    reads logs from there, so both must use this."""
    return jobs_dir / "roots"


def log_path(roots: Path, job_id: str, attempt: int) -> Path:
    """The file the executor appends attempt ``attempt``'s stdout and stderr to."""
    return roots / job_id / "logs" / f"attempt-{attempt}.log"


class Masker:
    """Replaces secret values by ``***``, in whole texts or in a stream read in pieces."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = sorted({s.encode() for s in secrets if len(s) >= MIN_SECRET}, key=len)
        # Longest first: where two values start at the same byte, the longer one is hidden.
        alternatives = b"|".join(re.escape(s) for s in reversed(found))
        self._pattern = re.compile(alternatives) if found else None
        self._secrets = found
        self._firsts = frozenset(s[0] for s in found)
        self.keep = len(found[-1]) - 1 if found else 0
        """The most bytes a stream holds back: a value may continue in the next piece."""

    def text(self, text: str) -> str:
        """``text`` with every secret value masked."""
        masked, _ = self.split(text.encode(), final=True)
        return masked.decode("utf-8", errors="replace")

    def split(self, data: bytes, *, final: bool) -> tuple[bytes, int]:
        """The servable start of ``data``, masked, and how many bytes of ``data`` it covers.

        Unless ``final``, a tail that is the start of a value (or of a UTF-8 character)
        is left for the next call, which must pass it again at its front.
        A value found starting before the cut is always whole in ``data``.
        """
        limit = len(data) if final else _char_boundary(data, self._open_tail(data))
        pieces: list[bytes] = []
        done = 0
        if self._pattern is not None:
            for match in self._pattern.finditer(data):
                if match.start() >= limit:
                    break
                pieces += [data[done : match.start()], MASK]
                done = match.end()
        if done < limit:
            pieces.append(data[done:limit])
            done = limit
        return b"".join(pieces), done

    def _open_tail(self, data: bytes) -> int:
        """Where the tail of ``data`` that begins some value (not all of it) starts."""
        for start in range(max(len(data) - self.keep, 0), len(data)):
            if data[start] in self._firsts:
                tail = data[start:]
                if any(len(s) > len(tail) and s.startswith(tail) for s in self._secrets):
                    return start
        return len(data)


def _char_boundary(data: bytes, cut: int) -> int:
    """The largest position <= ``cut`` that does not split a UTF-8 character."""
    cut = max(0, min(cut, len(data)))
    start = cut
    while start > 0 and cut - start < 4 and data[start - 1] & 0xC0 == 0x80:
        start -= 1
    if start == 0 or cut - start >= 4:
        return cut  # not UTF-8 here; nothing to keep whole
    lead = data[start - 1]
    size = next((n for n, (shift, bits) in _LEADS.items() if lead >> shift == bits), 1)
    return cut if cut - (start - 1) >= size else start - 1


def _parse_cursor(text: str) -> tuple[int, int]:
    found = _CURSOR.fullmatch(text)
    if found is None:
        raise InvalidInput(
            f"since {text[:40]!r} is not a log position; pass the 'next' of a log record, "
            "<attempt>:<byte offset> (e.g. 1:0)"
        )
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class _State:
    status: JobStatus
    attempts: int


def open_job_log(
    uow: UnitOfWork,
    roots: Path,
    account: str,
    kind: JobKind,
    name: str,
    *,
    attempt: int | None = None,
    since: str | None = None,
) -> JobLog:
    """The log of a job (every attempt, or only ``attempt``), from the start or ``since``.

    :class:`NotFound` for an unknown job, :class:`InvalidInput` for a bad cursor or a
    cursor of another attempt than ``attempt``.
    """
    row = job_row(uow, account, kind, name)
    if attempt is not None and attempt < 1:
        raise InvalidInput("attempt counts from 1")
    position = _parse_cursor(since) if since is not None else None
    if position is not None and attempt is not None and position[0] != attempt:
        raise InvalidInput(f"since {since} is a position in attempt {position[0]}, not {attempt}")
    secrets = [str(v) for v in dict(row.spec).get("environment", {}).values()]
    return JobLog(
        job_id=row.id,
        roots=roots,
        only=attempt,
        position=position,
        masker=Masker(secrets),
        state=_State(JobStatus(row.status), row.attempt),
    )


class JobLog:
    """One reader of a job's log; see the module docstring."""

    def __init__(
        self,
        *,
        job_id: str,
        roots: Path,
        only: int | None,
        position: tuple[int, int] | None,
        masker: Masker,
        state: _State,
    ) -> None:
        self.job_id = job_id
        self._roots = roots
        self._only = only
        self._position = position
        """The next byte to serve; ``None`` before the first attempt was entered."""
        self._masker = masker
        self._state = state

    @property
    def cursor(self) -> str | None:
        return None if self._position is None else "{}:{}".format(*self._position)

    def records(
        self,
        uow: UnitOfWorkFactory,
        *,
        follow: bool = False,
        max_seconds: float | None = None,
        status_seconds: float = 1.0,
    ) -> Generator[LogRecord | None, None, None]:
        """The log's pieces, then one end record.

        While following, ``None`` means nothing is new: the caller pauses (about
        :data:`POLL_SECONDS`) before asking again, and may notice meanwhile that its
        client left. The generator itself never sleeps, so a server can wait without
        holding a worker thread. Following re-reads the job's status at most every
        ``status_seconds`` and stops once the job ended and everything was served, or
        after ``max_seconds``. No transaction is held between reads.
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        checked = time.monotonic()
        while True:
            state = self._state
            ended = state.status in FINAL
            served = False
            for record in self._serve(ended=ended, attempts=state.attempts):
                served = True
                yield record
            complete = ended or (self._only is not None and state.attempts > self._only)
            if complete or not follow or (deadline is not None and time.monotonic() >= deadline):
                yield LogRecord(next=self.cursor, end=True, complete=complete, status=state.status)
                return
            if not served:
                yield None
            if time.monotonic() - checked >= status_seconds:
                self._state = self._read_state(uow)
                checked = time.monotonic()

    def _read_state(self, uow: UnitOfWorkFactory) -> _State:
        with uow() as r:
            row = r.session.get(JobRow, self.job_id)
            if row is None:  # jobs are never deleted today; if one were, its log is over
                return _State(JobStatus.STOPPED, self._state.attempts)
            return _State(JobStatus(row.status), row.attempt)

    def _serve(self, *, ended: bool, attempts: int) -> Iterator[LogRecord]:
        if self._position is None:
            first = self._only or 1
            if attempts < first:
                return  # nothing started yet
            self._position = (first, 0)
            if self._only is None:
                yield self._header(first)
        while True:
            current, _ = self._position
            # An attempt is over once the job ended or a later attempt was claimed.
            over = ended or attempts > current
            yield from self._read(current, final=over)
            if not over or self._only is not None or attempts <= current:
                return
            self._position = (current + 1, 0)
            yield self._header(current + 1)

    def _header(self, attempt: int) -> LogRecord:
        return LogRecord(text=f"--- attempt {attempt} ---\n", attempt=attempt, next=self.cursor)

    def _read(self, attempt: int, *, final: bool) -> Iterator[LogRecord]:
        path = log_path(self._roots, self.job_id, attempt)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        size = max(CHUNK, 2 * (self._masker.keep + 1))
        with handle:
            while True:
                assert self._position is not None
                offset = self._position[1]
                handle.seek(offset)
                data = handle.read(size)
                if not data:
                    return
                at_end = len(data) < size
                masked, used = self._masker.split(data, final=final and at_end)
                if used == 0:
                    return  # only a held-back tail: wait for more
                self._position = (attempt, offset + used)
                text = masked.decode("utf-8", errors="replace")
                yield LogRecord(text=text, attempt=attempt, next=self.cursor)
                if at_end and used == len(data):
                    return
