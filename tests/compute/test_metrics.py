"""Job metrics: the tailer on log and metrics files, the recorder on both databases.

The tailer reads files written here as an executor and ``ketch.log_metric`` write them;
the recorder stores points for real job rows claimed through the queue.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ketch import compute, org
from ketch.compute import metrics, queue
from ketch.compute.metrics import MetricRecorder, MetricTailer, Offsets, Point
from ketch.compute.queue import Capacity, Claim
from ketch.compute.tables import JobRow
from ketch.core.errors import NotFound
from ketch.schemas.jobs import JobKind, TrainingJobCreate
from ketch.schemas.org import AccountCreate, Stage
from ketch.store.session import UnitOfWorkFactory

ACCOUNT = "team-a"
LOSS = ("loss", r"loss=(\S+)")
ACC = ("acc", r"acc: ([0-9.]+)%?")


def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "attempt-1.log", tmp_path / "metrics.jsonl"


def test_each_complete_line_is_searched_with_each_regex(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    log.write_text(
        "epoch 1 loss=0.5 acc: 80.5%\nloss=abc acc: 1.2.3\nloss=1e-3\rloss=inf\nloss=0.2"
    )
    tailer = MetricTailer([LOSS, ACC], log, file)

    points, offsets = tailer.read(Offsets())
    assert [(p.name, p.value) for p in points] == [
        ("loss", 0.5),
        ("acc", 80.5),  # the first group, as SageMaker reads it
        ("loss", 0.001),  # "abc" and "1.2.3" are no numbers: ignored
        ("loss", math.inf),
    ]
    assert offsets == Offsets(log=log.read_bytes().rindex(b"\n") + 1, file=0)
    rest, end = tailer.read(offsets, final=True)  # the attempt ended: the last line counts
    assert [(p.name, p.value) for p in rest] == [("loss", 0.2)]
    assert end.log == log.stat().st_size


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    log.write_text("loss=0.")
    tailer = MetricTailer([LOSS], log, file)
    assert tailer.read(Offsets()) == ([], Offsets())
    with log.open("a") as handle:
        handle.write("75\n")
    assert tailer.read(Offsets())[0] == [Point("loss", 0.75)]


def test_a_group_that_did_not_match_is_ignored(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    log.write_text("loss=1\nval=2\n")
    tailer = MetricTailer([("either", r"loss=(\d)|val=\d")], log, file)
    assert tailer.read(Offsets())[0] == [Point("either", 1.0)]


def test_without_definitions_the_log_is_not_read(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    log.write_text("loss=1\n")
    assert MetricTailer([], log, file).read(Offsets()) == ([], Offsets())


def test_log_metric_lines_are_read_and_bad_ones_skipped(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    stamp = datetime(2026, 11, 24, tzinfo=UTC).timestamp()
    lines = [
        {"name": "acc", "value": 0.9, "step": 3, "time": stamp},
        {"name": "acc", "value": "NaN", "step": None, "time": 1.0},  # odd time: when recorded
        {"name": "acc", "value": "-Infinity"},
        {"name": "bad name!", "value": 1},
        {"name": "acc", "value": True},
        {"name": "acc", "value": "1.5"},
        {"name": "acc", "value": 1, "step": -1},
        {"name": "acc", "value": 1, "step": 1.5},
        ["not", "an", "object"],
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + "{broken\n" + "[" * 100_000 + "\n"
    file.write_text(text)
    points, offsets = MetricTailer([], log, file).read(Offsets())
    assert points[0] == Point("acc", 0.9, 3, datetime.fromtimestamp(stamp, UTC))
    assert math.isnan(points[1].value) and points[1].at is None
    assert points[2] == Point("acc", -math.inf)
    assert len(points) == 3
    assert offsets.file == len(text.encode())


def test_reads_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, file = files(tmp_path)
    log.write_text("loss=1\n" * 100)
    tailer = MetricTailer([LOSS], log, file)
    points, offsets = tailer.read(Offsets(), limit=10)
    assert len(points) == 10 and offsets.log == 70
    monkeypatch.setattr(metrics, "MAX_LINE", 16)
    log.write_text("x" * 40 + "loss=2\n")  # a long line is cut in 16-byte lines
    points, offsets = tailer.read(Offsets())
    assert offsets.log == 47 and points == [Point("loss", 2.0)]  # "xxxxxxxxloss=2"
    log.write_text("x" * 40)  # no newline yet, but too long to wait for
    assert tailer.read(Offsets())[1].log == 32


def test_links_and_fifos_are_not_read(tmp_path: Path) -> None:
    log, file = files(tmp_path)
    secret = tmp_path / "elsewhere.jsonl"
    secret.write_text(json.dumps({"name": "leak", "value": 1}) + "\n")
    file.symlink_to(secret)
    assert MetricTailer([], log, file).read(Offsets()) == ([], Offsets())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert MetricTailer([], log, fifo).read(Offsets(), final=True) == ([], Offsets())


# -- the recorder, on real rows --------------------------------------------------------


@pytest.fixture
def claim(uow: UnitOfWorkFactory) -> Claim:
    with uow(write=True) as w:
        org.create_account(w, AccountCreate(id=ACCOUNT, stage=Stage.DEV))
    spec = TrainingJobCreate.model_validate(
        {
            "name": "measured",
            "code": {"source_uri": f"ketch://{ACCOUNT}/code/s.tar.gz", "entry_point": "t.py"},
            "output_uri": f"ketch://{ACCOUNT}/jobs/",
        }
    )
    with uow(write=True) as w:
        compute.submit_job(w, ACCOUNT, JobKind.TRAINING, spec, created_by="t")
    with uow(write=True) as w:
        found = queue.claim_next(w, owner="ctl-1", lease=timedelta(seconds=30), capacity=Capacity())
    assert found is not None
    return found


def recorder(
    uow: UnitOfWorkFactory, claim: Claim, tmp_path: Path, **options: int
) -> MetricRecorder:
    log, file = files(tmp_path)
    tailer = MetricTailer([LOSS], log, file)
    return MetricRecorder(uow, claim, tailer, owner="ctl-1", lease=timedelta(seconds=30), **options)


def series(uow: UnitOfWorkFactory, metric: str | None = None) -> dict[str, list[float]]:
    with uow() as r:
        found = compute.get_job_metrics(r, ACCOUNT, JobKind.TRAINING, "measured", metric=metric)
    assert found.job == f"krn:ketch:{ACCOUNT}:training-job/measured"
    return {name: [p.value for p in points] for name, points in found.series.items()}


def test_points_are_recorded_once_and_non_finite_values_kept(
    uow: UnitOfWorkFactory, claim: Claim, tmp_path: Path
) -> None:
    log, file = files(tmp_path)
    log.write_text("loss=0.5\nloss=nan\nloss=-inf\n")
    file.write_text(json.dumps({"name": "acc", "value": "Infinity", "step": 7}) + "\n")
    first = recorder(uow, claim, tmp_path)
    assert first.collect()
    assert first.collect(), "nothing new: nothing recorded again"

    got = series(uow)
    assert len(got["loss"]) == 3, "the second collect recorded nothing again"
    assert got["loss"][0] == 0.5 and math.isnan(got["loss"][1]) and got["loss"][2] == -math.inf
    assert got["acc"] == [math.inf]
    assert series(uow, "acc") == {"acc": [math.inf]}
    with uow() as r:
        points = compute.get_job_metrics(r, ACCOUNT, JobKind.TRAINING, "measured").series
    assert (points["acc"][0].step, points["acc"][0].attempt) == (7, 1)
    assert points["loss"][0].step is None


def test_a_controller_taking_over_reads_on_from_the_stored_offsets(
    uow: UnitOfWorkFactory, claim: Claim, tmp_path: Path
) -> None:
    log, _ = files(tmp_path)
    log.write_text("loss=1\n")
    assert recorder(uow, claim, tmp_path).collect()
    with log.open("a") as handle:
        handle.write("loss=2\nloss=3")
    assert recorder(uow, claim, tmp_path).collect(final=True)
    assert series(uow) == {"loss": [1.0, 2.0, 3.0]}


def test_a_recorder_whose_claim_was_taken_records_nothing(
    uow: UnitOfWorkFactory, claim: Claim, tmp_path: Path
) -> None:
    log, _ = files(tmp_path)
    log.write_text("loss=1\n")
    stale = recorder(uow, claim, tmp_path)
    with uow(write=True) as w:  # another controller took the job over: the fence moved
        row = w.session.get(JobRow, claim.job_id)
        assert row is not None
        row.fence += 1
    assert stale.collect() is False
    assert series(uow) == {}


def test_a_job_records_at_most_its_cap(
    uow: UnitOfWorkFactory, claim: Claim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = files(tmp_path)
    log.write_text("loss=1\n" * 30)
    capped = recorder(uow, claim, tmp_path, max_points=12)
    assert capped.collect(final=True)
    with log.open("a") as handle:
        handle.write("loss=2\n")
    assert capped.collect(final=True)
    assert len(series(uow)["loss"]) == 12
    assert "further points are not" in caplog.text
    assert recorder(uow, claim, tmp_path, max_points=12).collect(final=True)  # none left
    assert len(series(uow)["loss"]) == 12


def test_metrics_of_an_unknown_job_are_not_found(uow: UnitOfWorkFactory) -> None:
    with uow() as r, pytest.raises(NotFound):
        compute.get_job_metrics(r, "nobody", JobKind.TRAINING, "nope")
