"""`ketch jobs`: run (without waiting), ls, describe, stop, logs, metrics, and the syntax
of pairs.

The test app runs no jobs: a job stays Pending until it is stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import ketch
from cli.results import Run, failed, json_output
from ketch import compute
from ketch.cli.commands.jobs import parse_value
from ketch.compute.tables import JobMetricRow, JobRow
from ketch.server.context import Context


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return "fraud-dev"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "train.py").write_text("print('hi')\n")
    return root


def submit(run: Run, source: Path, *extra: str) -> dict[str, object]:
    job: dict[str, object] = json_output(
        run("jobs", "run", "train.py", "--source-dir", str(source),
            "--input", "train=ketch://fraud-dev/data/train.csv", "--no-wait", "-o", "json", *extra)
    )  # fmt: skip
    return job


def test_run_without_waiting_submits_with_typed_hyperparameters(
    run: Run, client: ketch.Client, account: str, source: Path
) -> None:
    result = run(
        "jobs", "run", "train.py", "--source-dir", str(source),
        "--input", "train=ketch://fraud-dev/data/train.csv",
        "--hp", "epochs=3", "--hp", "lr=0.1", "--hp", "fast=true", "--hp", "opt=adam",
        "--env", "MODE=x", "--max-runtime", "600", "--name", "cli-1", "--no-wait",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no waiting, no status lines
    assert "Pending" in result.stdout and "Transitions" in result.stdout
    job = client.training_jobs.get("fraud-dev", "cli-1")
    assert job.spec.hyperparameters == {"epochs": 3, "lr": 0.1, "fast": True, "opt": "adam"}
    assert (job.spec.max_runtime_seconds, list(job.spec.environment)) == (600, ["MODE"])
    assert job.spec.inputs == {"train": "ketch://fraud-dev/data/train.csv"}
    client.artifacts.describe(job.spec.code.source_uri)
    assert job.spec.code.source_uri.startswith("ketch://fraud-dev/jobs/sources/")


def test_run_processing_and_generated_name(
    run: Run, client: ketch.Client, account: str, source: Path
) -> None:
    job = submit(run, source, "--processing")
    assert job["kind"] == "processing"
    assert str(job["name"]).startswith("train-")
    assert client.processing_jobs.get("fraud-dev", str(job["name"])).status.value == "Pending"


def test_run_waits_reporting_status_until_its_timeout(
    run: Run, client: ketch.Client, account: str, source: Path
) -> None:
    result = run("jobs", "run", "train.py", "--source-dir", str(source), "--account",
                 "fraud-dev", "--name", "w-1", "--timeout", "0.3")  # fmt: skip

    assert (result.exit_code, result.stdout) == (1, "")
    status, error = result.stderr.split("\n", 1)
    assert status == "training job w-1: Pending"
    assert error.startswith("Error: ") and "'w-1' in fraud-dev is still Pending" in error
    assert client.training_jobs.get("fraud-dev", "w-1").status.value == "Pending"


def test_ls_describe_and_stop(run: Run, account: str, source: Path) -> None:
    submit(run, source, "--name", "a-1")
    submit(run, source, "--name", "b-1")

    table = run("jobs", "ls", "--account", "fraud-dev")
    assert table.exit_code == 0, table.output
    assert "a-1" in table.stdout and "b-1" in table.stdout and "cpu.small" in table.stdout
    listed = json_output(run("jobs", "ls", "--account", "fraud-dev", "--name-prefix", "a-",
                             "-o", "json"))  # fmt: skip
    assert [j["name"] for j in listed] == ["a-1"]
    assert json_output(run("jobs", "ls", "--account", "fraud-dev", "--processing",
                           "-o", "json")) == []  # fmt: skip

    stopped = run("jobs", "stop", "a-1", "--account", "fraud-dev", "--yes")
    assert stopped.exit_code == 0, stopped.output
    assert "Stopped" in stopped.stdout
    only = json_output(run("jobs", "ls", "--account", "fraud-dev", "--status", "Stopped",
                           "-o", "json"))  # fmt: skip
    assert [j["name"] for j in only] == ["a-1"]

    shown = run("jobs", "describe", "a-1", "--account", "fraud-dev")
    assert shown.exit_code == 0, shown.output
    for fragment in ("secondary_status", "failure_reason", "Transitions", "stopped before it",
                     "ketch://fraud-dev/jobs/", "output_artifact_uri"):  # fmt: skip
        assert fragment in shown.stdout
    described = json_output(run("jobs", "describe", "a-1", "--account", "fraud-dev", "-o", "json"))
    assert [t["status"] for t in described["transitions"]] == ["Pending", "Stopped"]


def test_stop_asks_without_yes_and_refuses_an_ended_job(
    run: Run, account: str, source: Path
) -> None:
    submit(run, source, "--name", "a-1")
    refused = run("jobs", "stop", "a-1", "--account", "fraud-dev")
    assert refused.exit_code == 1 and "without --yes" in refused.stderr
    assert run("jobs", "stop", "a-1", "--account", "fraud-dev", "-y").exit_code == 0
    failed(run("jobs", "stop", "a-1", "--account", "fraud-dev", "-y"), "already ended", "Conflict")


def test_describe_an_unknown_job_fails(run: Run, account: str) -> None:
    failed(run("jobs", "describe", "nope", "--account", "fraud-dev"), "NotFound")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--hp", "epochs"], "--hp"),
        (["--hp", "=3"], "--hp"),
        (["--input", "ketch://fraud-dev/data/"], "--input"),
        (["--env", "NOVALUE"], "--env"),
    ],
)
def test_bad_pairs_are_usage_errors(
    run: Run, account: str, source: Path, args: list[str], option: str
) -> None:
    result = run("jobs", "run", "train.py", "--source-dir", str(source), "--account", "fraud-dev",
                 "--no-wait", *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    words = " ".join(result.stderr.replace("│", " ").split())  # unwrap the Rich error box
    assert "must look like name=value" in words and option in words


def test_a_bad_tag_filter_is_a_usage_error(run: Run, account: str) -> None:
    result = run("jobs", "ls", "--account", "fraud-dev", "--tag", "team")
    assert result.exit_code == 2 and "--tag" in result.stderr


def test_run_errors_are_reported(run: Run, account: str, source: Path) -> None:
    failed(run("jobs", "run", "missing.py", "--source-dir", str(source), "--account", "fraud-dev",
               "--no-wait"), "entry point 'missing.py'")  # fmt: skip
    failed(run("jobs", "run", "train.py", "--source-dir", str(source), "--no-wait"),
           "pass account=")  # fmt: skip
    failed(run("jobs", "run", "train.py", "--source-dir", str(source), "--account", "fraud-dev",
               "--instance-type", "cpu.huge", "--no-wait"), "cpu.huge")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("False", False),
     ("adam", "adam"), ("nan", "nan"), ("inf", "inf"), ("", ""), ("3x", "3x")],
)  # fmt: skip
def test_hyperparameter_values_are_typed(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_run_sends_metric_definitions(
    run: Run, client: ketch.Client, account: str, source: Path
) -> None:
    submit(run, source, "--name", "m-1", "--metric", r"loss=loss=(\S+)", "--metric", "acc=acc (.*)")
    job = client.training_jobs.get("fraud-dev", "m-1")
    assert [(d.name, d.regex) for d in job.spec.metric_definitions] == [
        ("loss", r"loss=(\S+)"),
        ("acc", "acc (.*)"),
    ]
    result = run("jobs", "run", "train.py", "--source-dir", str(source), "--account",
                 "fraud-dev", "--no-wait", "--metric", "loss=no-group")  # fmt: skip
    assert result.exit_code == 1 and "needs a group" in result.stderr


def played(context: Context, name: str, status: str, text: str) -> None:
    """The test app runs no jobs: move one as a runner would and write its log."""
    with context.uow(write=True) as w:
        row = w.session.scalars(select(JobRow).where(JobRow.name == name)).one()
        row.status, row.attempt = status, 1
        job_id = row.id
        w.session.add_all(
            JobMetricRow(job_id=job_id, seq=n, name="loss", value=v, step=n, at=row.created_at,
                         attempt=1)
            for n, v in enumerate([0.5, 0.25, None], start=1)
        )  # fmt: skip
    settings = context.settings
    path = compute.log_path(compute.roots_dir(settings.resolved_jobs_dir()), job_id, 1)
    path.parent.mkdir(parents=True)
    path.write_text(text)


def test_logs_prints_the_log_with_secrets_masked(
    run: Run, account: str, source: Path, context: Context
) -> None:
    submit(run, source, "--name", "l-1", "--env", "TOKEN=s3cr3t-value")
    played(context, "l-1", "Completed", "[rich] token s3cr3t-value\n")

    for follow in ([], ["-f"]):
        shown = run("jobs", "logs", "l-1", "--account", "fraud-dev", *follow)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout == "--- attempt 1 ---\n[rich] token ***\n"
    only = run("jobs", "logs", "l-1", "-a", "fraud-dev", "--attempt", "1", "--since", "1:7")
    assert only.stdout == "token ***\n"
    failed(run("jobs", "logs", "nope", "-a", "fraud-dev"), "NotFound")
    failed(run("jobs", "logs", "l-1", "-a", "fraud-dev", "--processing"), "NotFound")


def test_metrics_are_summed_up_or_given_whole(
    run: Run, account: str, source: Path, context: Context
) -> None:
    submit(run, source, "--name", "l-1")
    played(context, "l-1", "Completed", "")

    table = run("jobs", "metrics", "l-1", "--account", "fraud-dev")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "loss" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["loss", "3", "nan", "3", "0.25", "0.5"]  # min/max leave NaN out
    whole = json_output(run("jobs", "metrics", "l-1", "-a", "fraud-dev", "-o", "json"))
    assert [p["value"] for p in whole["series"]["loss"]] == [0.5, 0.25, "NaN"]
    assert (
        json_output(
            run("jobs", "metrics", "l-1", "-a", "fraud-dev", "--metric", "acc", "-o", "json")
        )["series"]
        == {}
    )
