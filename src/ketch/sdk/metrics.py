"""``ketch.log_metric``: one point of a metric, from inside a running job.

Only the standard library: each call appends one JSON line to the file named by
``KETCH_METRICS_FILE`` (every job gets it, in its ``opt/ml/output/``) with a single
``write`` in append mode, so several processes of one job may log at once. The runner
reads the file as it grows and records the points in the same series as the job's
metric definitions. Non-finite values are written as ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, as the API returns them.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import time

__all__ = ["METRICS_FILE_VARIABLE", "log_metric"]

METRICS_FILE_VARIABLE = "KETCH_METRICS_FILE"
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,255}")  # as the job spec's metric definition names


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record ``value`` (a real number; NaN and infinities too) for metric ``name`` of the
    running job, at ``step`` if given (a whole number >= 0).

    ``RuntimeError`` outside a ketch job; ``ValueError`` / ``TypeError`` for a name,
    value or step that cannot be recorded, before anything is written.
    """
    path = os.environ.get(METRICS_FILE_VARIABLE)
    if not path:
        raise RuntimeError(
            "ketch.log_metric records metrics of a running ketch job, and "
            f"{METRICS_FILE_VARIABLE} is not set: this code is not running as a job"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"metric name {str(name)[:60]!r} is not allowed; use 1-255 of A-Z a-z 0-9 _ . : / -"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"a metric value is a real number, not {type(value).__name__}")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 0 <= step < 2**63
    ):
        raise ValueError(f"step must be a whole number >= 0 (or None), not {step!r}")
    number = float(value)
    shown: float | str = number
    if math.isnan(number):
        shown = "NaN"
    elif math.isinf(number):
        shown = "Infinity" if number > 0 else "-Infinity"
    entry = {"name": name, "value": shown, "step": None if step is None else int(step)}
    line = json.dumps({**entry, "time": time.time()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
