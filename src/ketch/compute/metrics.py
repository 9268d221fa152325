"""Job metrics: points read from a running attempt's log and metrics file, and served.

Two sources feed the same series, as in SageMaker:

- *metric definitions* (``name`` + ``regex``): each complete log line is searched with
  each regex and the first group, read as a float, is a point (``\\r`` separates lines
  too, for progress bars); a group that is no number is ignored;
- ``ketch.log_metric(name, value, step)`` in the job appends a JSON line to
  ``KETCH_METRICS_FILE`` (``opt/ml/output/metrics.jsonl``); a malformed line is ignored.

:class:`MetricTailer` reads from given offsets and keeps no state; :class:`MetricRecorder`
stores the points read and the offsets reached in one transaction fenced by the claim,
so a controller that takes an attempt over reads on from the stored offsets and no point
is recorded twice. Values may be NaN or infinite; NaN is stored as NULL (see ``tables``).

Bounds: :data:`MAX_POINTS_PER_JOB` points per job (the rest is skipped, with one
warning); per read, :data:`MAX_POINTS_PER_READ` points and :data:`MAX_READ_BYTES` of each
source; lines are cut at :data:`MAX_LINE` bytes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import func, insert, select

from ketch.compute import queue
from ketch.compute.service import job_krn, job_row
from ketch.compute.tables import JobMetricCursorRow, JobMetricRow
from ketch.schemas.jobs import JobKind, JobMetrics, MetricPoint
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "MAX_POINTS_PER_JOB",
    "MetricRecorder",
    "MetricTailer",
    "Offsets",
    "Point",
    "get_job_metrics",
]

logger = logging.getLogger(__name__)

MAX_POINTS_PER_JOB = 100_000
MAX_POINTS_PER_READ = 5_000
MAX_READ_BYTES = 1 << 20
MAX_LINE = 64 * 1024
SAVE_SECONDS = 30.0
"""How often offsets that moved without finding a point are stored (a take-over re-reads
at most this much)."""
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,255}")  # as MetricDefinition.name
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_EARLIEST, _LATEST = 946_684_800, 7_258_118_400  # 2000 to 2200: a time from the job, or not


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    value: float
    step: int | None = None
    at: datetime | None = None
    """When the job said it was measured; ``None``: when it is recorded."""


@dataclass(frozen=True, slots=True)
class Offsets:
    """How far the log and the metrics file were read (bytes)."""

    log: int = 0
    file: int = 0


class MetricTailer:
    """Reads new points of one attempt (see the module docstring)."""

    def __init__(
        self, definitions: Sequence[tuple[str, str]], log_path: Path, metrics_path: Path
    ) -> None:
        self._definitions = [(name, re.compile(regex)) for name, regex in definitions]
        self.log_path = log_path
        self.metrics_path = metrics_path

    def read(
        self, offsets: Offsets, *, final: bool = False, limit: int = MAX_POINTS_PER_READ
    ) -> tuple[list[Point], Offsets]:
        """The points after ``offsets`` (about ``limit`` at most) and the offsets after them.

        Only complete lines are read unless ``final`` (the attempt ended: a last line
        without its newline counts too).
        """
        points: list[Point] = []
        log = offsets.log
        if self._definitions:  # without definitions the log holds no metrics
            for line, end in _lines(self.log_path, offsets.log, final=final):
                if len(points) >= limit:
                    break
                points += self._matches(line)
                log = end
        file = offsets.file
        for line, end in _lines(self.metrics_path, offsets.file, final=final):
            if len(points) >= limit:
                break
            point = _point_of(line)
            if point is not None:
                points.append(point)
            file = end
        return points, Offsets(log, file)

    def ends(self) -> Offsets:
        """The sizes of both sources now: where reading would stop."""
        return Offsets(_size(self.log_path), _size(self.metrics_path))

    def _matches(self, line: bytes) -> list[Point]:
        found: list[Point] = []
        for segment in line.decode("utf-8", errors="replace").split("\r"):
            for name, pattern in self._definitions:
                match = pattern.search(segment)
                if match is None:
                    continue
                try:
                    found.append(Point(name, float(match.group(1))))
                except (TypeError, ValueError):  # no group matched, or not a number
                    continue
        return found


def _open_regular(path: Path) -> IO[bytes] | None:
    """``path`` for reading if it is a regular file; a link, FIFO or device is not opened
    (the job can write where the metrics file lives, and a FIFO would block the reader)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        return None
    return handle


def _size(path: Path) -> int:
    handle = _open_regular(path)
    if handle is None:
        return 0
    with handle:
        return os.fstat(handle.fileno()).st_size


def _lines(path: Path, offset: int, *, final: bool) -> list[tuple[bytes, int]]:
    """The lines after ``offset`` (without their newline), each with the offset after it."""
    handle = _open_regular(path)
    if handle is None:
        return []
    with handle:
        handle.seek(offset)
        data = handle.read(MAX_READ_BYTES)
    at_end = len(data) < MAX_READ_BYTES
    found: list[tuple[bytes, int]] = []
    start = 0
    while start < len(data):
        newline = data.find(b"\n", start, start + MAX_LINE)
        if newline >= 0:
            found.append((data[start:newline], offset + newline + 1))
            start = newline + 1
        elif len(data) - start >= MAX_LINE:  # too long: cut, the rest is the next line
            found.append((data[start : start + MAX_LINE], offset + start + MAX_LINE))
            start += MAX_LINE
        else:
            if final and at_end:
                found.append((data[start:], offset + len(data)))
            break
    return found


def _point_of(line: bytes) -> Point | None:
    """A ``ketch.log_metric`` line: ``{"name", "value", "step", "time"}``, or ``None``."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict):
        return None
    name, value, step = entry.get("name"), _number(entry.get("value")), entry.get("step")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or value is None:
        return None
    if step is not None and (type(step) is not int or not 0 <= step < 2**63):
        return None
    stamp = entry.get("time")
    at = None
    number = stamp if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None
    if number is not None and _EARLIEST <= number <= _LATEST:
        at = datetime.fromtimestamp(number, UTC)
    return Point(name, value, step, at)


def _number(value: object) -> float | None:
    if isinstance(value, str):
        return _NON_FINITE.get(value)
    if type(value) not in (int, float):  # bool is no number here
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None


class MetricRecorder:
    """Records one attempt's points as the attempt runs; every write is fenced by its claim."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        claim: queue.Claim,
        tailer: MetricTailer,
        *,
        owner: str,
        lease: timedelta,
        max_points: int = MAX_POINTS_PER_JOB,
    ) -> None:
        self._uow = uow
        self._claim = claim
        self._tailer = tailer
        self._owner = owner
        self._lease = lease
        with uow() as r:
            cursor = r.session.get(JobMetricCursorRow, (claim.job_id, claim.attempt))
            stored = r.session.scalar(
                select(func.count())
                .select_from(JobMetricRow)
                .where(JobMetricRow.job_id == claim.job_id)
            )
        self._offsets = Offsets(cursor.log_offset, cursor.file_offset) if cursor else Offsets()
        self._saved = self._offsets
        self._saved_at = time.monotonic()
        self._room = max(max_points - (stored or 0), 0)
        self._warned = False

    def collect(self, *, final: bool = False) -> bool:
        """Read what is new and record it (``final``: everything, the attempt ended).

        ``False`` if the claim was lost: nothing was recorded, the new holder reads it.
        """
        while True:
            if self._room == 0:
                self._warn_full()
                points: list[Point] = []
                offsets = self._tailer.ends()
            else:
                points, offsets = self._tailer.read(
                    self._offsets, final=final, limit=min(MAX_POINTS_PER_READ, self._room)
                )
                points = points[: self._room]
            due = final or time.monotonic() - self._saved_at >= SAVE_SECONDS
            changed = points or (offsets != self._saved and due)
            if changed and not self._store(points, offsets):
                return False
            moved = offsets != self._offsets
            self._offsets = offsets
            self._room -= len(points)
            if not final or not moved:
                return True

    def _store(self, points: list[Point], offsets: Offsets) -> bool:
        claim = self._claim
        with self._uow(write=True) as w:
            if not queue.heartbeat(w, claim, owner=self._owner, lease=self._lease):
                return False
            if points:
                now = w.clock.now()
                last = w.session.scalar(
                    select(func.max(JobMetricRow.seq)).where(JobMetricRow.job_id == claim.job_id)
                )
                w.session.execute(
                    insert(JobMetricRow),
                    [
                        {
                            "job_id": claim.job_id,
                            "seq": (last or 0) + number,
                            "name": point.name,
                            "value": None if math.isnan(point.value) else point.value,
                            "step": point.step,
                            "at": point.at or now,
                            "attempt": claim.attempt,
                        }
                        for number, point in enumerate(points, start=1)
                    ],
                )
            _save_offsets(w, claim, offsets)
        self._saved, self._saved_at = offsets, time.monotonic()
        return True

    def _warn_full(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "job %s: %d metric points recorded; further points are not",
                self._claim.job_id,
                MAX_POINTS_PER_JOB,
            )


def _save_offsets(uow: UnitOfWork, claim: queue.Claim, offsets: Offsets) -> None:
    row = uow.session.get(JobMetricCursorRow, (claim.job_id, claim.attempt))
    if row is None:
        row = JobMetricCursorRow(job_id=claim.job_id, attempt=claim.attempt)
        uow.session.add(row)
    row.log_offset, row.file_offset = offsets.log, offsets.file


def get_job_metrics(
    uow: UnitOfWork, account: str, kind: JobKind, name: str, *, metric: str | None = None
) -> JobMetrics:
    """A job's metric series (only ``metric``'s if given), points in recorded order."""
    row = job_row(uow, account, kind, name)
    query = select(
        JobMetricRow.name,
        JobMetricRow.value,
        JobMetricRow.step,
        JobMetricRow.at,
        JobMetricRow.attempt,
    ).where(JobMetricRow.job_id == row.id)
    if metric is not None:
        query = query.where(JobMetricRow.name == metric)
    series: dict[str, list[MetricPoint]] = {}
    for point_name, value, step, at, attempt in uow.session.execute(
        query.order_by(JobMetricRow.name, JobMetricRow.seq)
    ):
        point = MetricPoint(
            value=math.nan if value is None else value, step=step, timestamp=at, attempt=attempt
        )
        series.setdefault(point_name, []).append(point)
    return JobMetrics(job=job_krn(account, kind, name), series=series)
