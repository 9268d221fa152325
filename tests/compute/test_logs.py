"""Job logs: masking secrets in a stream read in pieces, positions, attempts, following.

The reader runs against real job rows on both databases and log files written here as
an executor would write them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch import compute, org
from ketch.compute.logs import CHUNK, Masker, _char_boundary
from ketch.compute.tables import JobRow
from ketch.core.errors import InvalidInput, NotFound
from ketch.schemas.jobs import JobKind, JobStatus, LogRecord, TrainingJobCreate
from ketch.schemas.org import AccountCreate, Stage
from ketch.store.session import UnitOfWorkFactory

SECRET = "s3cr3t-value"
ACCOUNT = "team-a"


def test_values_of_four_characters_or_more_are_masked() -> None:
    masker = Masker([SECRET, "abc", "tokenXYZ", ""])
    assert masker.text(f"a {SECRET} b tokenXYZ c abc") == "a *** b *** c abc"
    assert masker.keep == len(SECRET) - 1
    assert Masker([]).text("nothing to hide") == "nothing to hide"


def test_the_longer_of_two_values_starting_together_is_masked_whole() -> None:
    assert Masker(["abcd", "abcdefgh"]).text("xabcdefghx") == "x***x"


def test_a_running_log_holds_back_what_could_start_a_value() -> None:
    masker = Masker([SECRET])
    masked, used = masker.split(b"hello s3cr3t-val", final=False)
    assert (masked, used) == (b"hello ", 6)
    masked, used = masker.split(b"hello s3cr3t-val", final=True)
    assert (masked, used) == (b"hello s3cr3t-val", 16)


@pytest.mark.parametrize("seed", range(20))
def test_masking_in_pieces_equals_masking_the_whole(seed: int) -> None:
    masker = Masker([SECRET, "pass-word-9", "é€ secret"])
    text = f"line {SECRET}, é€ secret and pass-word-9 {SECRET}{SECRET}\n".encode() * 30
    rng = random.Random(seed)
    cuts = [*sorted(rng.sample(range(1, len(text)), 25)), len(text)]
    out, done = b"", 0
    for cut in cuts:  # the log grows to each cut; the reader reads from where it stopped
        while True:
            masked, used = masker.split(text[done:cut], final=cut == len(text))
            out, done = out + masked, done + used
            if used == 0 or done == cut:
                break
    assert done == len(text)
    assert out == masker.text(text.decode()).encode()
    assert SECRET.encode() not in out and "é€ secret".encode() not in out


def test_utf8_characters_are_never_split() -> None:
    data = "aé€".encode()  # 61 | c3 a9 | e2 82 ac
    assert [_char_boundary(data, n) for n in range(7)] == [0, 1, 1, 3, 3, 3, 6]
    assert _char_boundary(b"\xff\xfe", 2) == 2  # not UTF-8: cut where asked


# -- the reader, on real job rows ------------------------------------------------------


@pytest.fixture
def job_id(uow: UnitOfWorkFactory) -> str:
    with uow(write=True) as w:
        org.create_account(w, AccountCreate(id=ACCOUNT, stage=Stage.DEV))
    spec = TrainingJobCreate.model_validate(
        {
            "name": "logged",
            "code": {"source_uri": f"ketch://{ACCOUNT}/code/s.tar.gz", "entry_point": "t.py"},
            "output_uri": f"ketch://{ACCOUNT}/jobs/",
            "environment": {"API_TOKEN": SECRET, "SHORT": "abc"},
        }
    )
    with uow(write=True) as w:
        return compute.submit_job(w, ACCOUNT, JobKind.TRAINING, spec, created_by="t").id


def set_job(uow: UnitOfWorkFactory, job_id: str, status: JobStatus, attempts: int) -> None:
    with uow(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        row.status, row.attempt = status.value, attempts


def write(roots: Path, job_id: str, attempt: int, text: str | bytes) -> None:
    path = compute.log_path(roots, job_id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        log.write(text.encode() if isinstance(text, str) else text)


def read(uow: UnitOfWorkFactory, roots: Path, **options: object) -> tuple[str, list[LogRecord]]:
    options = dict(options)
    follow = bool(options.pop("follow", False))
    with uow() as r:
        log = compute.open_job_log(r, roots, ACCOUNT, JobKind.TRAINING, "logged", **options)  # type: ignore[arg-type]
    found = polled(log.records(uow, follow=follow, status_seconds=0.01))
    records = [r for r in found if r is not None]
    assert records[-1].end and all(not r.end for r in records[:-1])
    return "".join(r.text for r in records), records


def polled(records: Iterator[LogRecord | None]) -> Iterator[LogRecord | None]:
    """The records, pausing where the reader says nothing is new (as the route does)."""
    for record in records:
        if record is None:
            time.sleep(0.01)
        yield record


def test_a_job_not_started_has_an_empty_log(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    text, records = read(uow, tmp_path)
    assert text == "" and records[-1] == LogRecord(
        end=True, complete=False, status=JobStatus.PENDING
    )


def test_attempts_in_order_each_with_a_header_and_secrets_masked(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    write(tmp_path, job_id, 1, f"first try, token {SECRET}\n")
    write(tmp_path, job_id, 2, "second try abc\n")
    set_job(uow, job_id, JobStatus.COMPLETED, 2)

    text, records = read(uow, tmp_path)
    assert text == ("--- attempt 1 ---\nfirst try, token ***\n--- attempt 2 ---\nsecond try abc\n")
    assert records[-1].complete and records[-1].next == "2:15"
    only, _ = read(uow, tmp_path, attempt=2)
    assert only == "second try abc\n"
    assert read(uow, tmp_path, attempt=3)[0] == ""


def test_since_resumes_at_the_byte_after_what_was_served(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    write(tmp_path, job_id, 1, "one\ntwo\n")
    set_job(uow, job_id, JobStatus.TRAINING, 1)
    _, records = read(uow, tmp_path)
    cursor = records[-1].next
    assert cursor == "1:8" and not records[-1].complete

    write(tmp_path, job_id, 1, "three\n")
    set_job(uow, job_id, JobStatus.FAILED, 2)  # a second attempt was claimed, then failed
    write(tmp_path, job_id, 2, "again\n")
    text, records = read(uow, tmp_path, since=cursor)
    assert text == "three\n--- attempt 2 ---\nagain\n"
    assert read(uow, tmp_path, since="2:3")[0] == "in\n"


def test_a_value_split_between_two_reads_of_a_running_attempt_stays_hidden(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    set_job(uow, job_id, JobStatus.TRAINING, 1)
    write(tmp_path, job_id, 1, "token s3cr")
    first, records = read(uow, tmp_path)
    write(tmp_path, job_id, 1, "3t-value done\n")
    second, _ = read(uow, tmp_path, since=records[-1].next)
    assert first + second == "--- attempt 1 ---\ntoken *** done\n"


def test_a_value_across_the_reader_s_chunk_boundary_stays_hidden(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    write(tmp_path, job_id, 1, "x" * (CHUNK - 5) + SECRET + "\n")
    set_job(uow, job_id, JobStatus.COMPLETED, 1)
    text, records = read(uow, tmp_path, attempt=1)
    assert text == "x" * (CHUNK - 5) + "***\n"
    assert len(records) >= 3  # served in pieces, never whole


def test_following_serves_new_output_until_the_job_ends(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    set_job(uow, job_id, JobStatus.DOWNLOADING, 1)

    def run() -> None:
        time.sleep(0.1)
        write(tmp_path, job_id, 1, "epoch 1 token s3cr")
        time.sleep(0.1)
        write(tmp_path, job_id, 1, "3t-value\nepoch 2")
        time.sleep(0.1)
        set_job(uow, job_id, JobStatus.COMPLETED, 1)

    writer = threading.Thread(target=run)
    writer.start()
    text, records = read(uow, tmp_path, follow=True)
    writer.join()
    assert text == "--- attempt 1 ---\nepoch 1 token ***\nepoch 2"
    assert records[-1].complete and records[-1].status is JobStatus.COMPLETED


def test_following_stops_after_max_seconds_with_its_position(
    uow: UnitOfWorkFactory, job_id: str, tmp_path: Path
) -> None:
    set_job(uow, job_id, JobStatus.TRAINING, 1)
    write(tmp_path, job_id, 1, "working\n")
    with uow() as r:
        log = compute.open_job_log(r, tmp_path, ACCOUNT, JobKind.TRAINING, "logged")
    started = time.monotonic()
    records = list(polled(log.records(uow, follow=True, max_seconds=0.3)))
    assert 0.3 <= time.monotonic() - started < 2
    assert None in records, "idle polls are reported, so a server can notice a client left"
    last = records[-1]
    assert last is not None and last.end and not last.complete and last.next == "1:8"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"since": "1"}, InvalidInput, "is not a log position"),
        ({"since": "0:5"}, InvalidInput, "is not a log position"),
        ({"since": "1:-5"}, InvalidInput, "is not a log position"),
        ({"since": "2:0", "attempt": 1}, InvalidInput, "in attempt 2, not 1"),
        ({"attempt": 0}, InvalidInput, "counts from 1"),
        ({"name": "nope"}, NotFound, "does not exist"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_read(
    uow: UnitOfWorkFactory,
    job_id: str,
    tmp_path: Path,
    options: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    options = dict(options)  # shared by both databases' runs
    name = str(options.pop("name", "logged"))
    with uow() as r, pytest.raises(error, match=message):
        compute.open_job_log(r, tmp_path, ACCOUNT, JobKind.TRAINING, name, **options)  # type: ignore[arg-type]
