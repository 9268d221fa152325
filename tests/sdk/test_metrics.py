"""``ketch.log_metric``: the JSON lines a job's metrics file receives, and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import ketch
from ketch.sdk.metrics import METRICS_FILE_VARIABLE


@pytest.fixture
def metrics_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the job contract sets in every job's environment."""
    path = tmp_path / "output" / "metrics.jsonl"
    path.parent.mkdir()
    monkeypatch.setenv(METRICS_FILE_VARIABLE, str(path))
    return path


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outside_a_job_log_metric_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_FILE_VARIABLE, raising=False)
    with pytest.raises(RuntimeError, match="not running as a job"):
        ketch.log_metric("loss", 0.5)


def test_each_point_is_one_json_line(metrics_file: Path) -> None:
    ketch.log_metric("loss", 0.5, step=1)
    ketch.log_metric("val/acc", 1)
    ketch.log_metric("loss", math.nan)
    ketch.log_metric("loss", -math.inf, step=2**62)

    found = lines(metrics_file)
    assert [(p["name"], p["value"], p["step"]) for p in found] == [
        ("loss", 0.5, 1),
        ("val/acc", 1.0, None),
        ("loss", "NaN", None),
        ("loss", "-Infinity", 2**62),
    ]
    assert all(isinstance(p["time"], float) for p in found)
    assert metrics_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("bad name", 1.0), ValueError, "metric name"),
        (("", 1.0), ValueError, "metric name"),
        (("x" * 256, 1.0), ValueError, "metric name"),
        (("loss", "0.5"), TypeError, "real number, not str"),
        (("loss", True), TypeError, "real number, not bool"),
        (("loss", 1.0, -1), ValueError, "step"),
        (("loss", 1.0, 1.5), ValueError, "step"),
        (("loss", 1.0, True), ValueError, "step"),
    ],
)
def test_what_cannot_be_recorded_is_refused_before_writing(
    metrics_file: Path, args: tuple[object, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ketch.log_metric(*args)  # type: ignore[arg-type]
    assert not metrics_file.exists()
