"""`ketch audit`: ls with filters, export as JSON Lines, verify with its exit code."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

import ketch
from cli.results import Run, json_output
from ketch.schemas.audit import AuditOutcome
from ketch.server.context import Context
from support.audit import record, tamper, write_digest


@pytest.fixture
def trail(context: Context, client: ketch.Client) -> Context:
    record(context, 4, principal="carol", account="fraud-dev")
    record(context, 3, start=4, principal="dave", account="fraud-prod")
    record(context, 1, start=7, outcome=AuditOutcome.DENIED, error_code="AccessDenied")
    return context


def test_ls_shows_the_newest_records_first(trail: Context, run: Run) -> None:
    table = run("audit", "ls")
    assert table.exit_code == 0, table.output
    assert "Audit records" in table.stdout and "Action7" in table.stdout
    assert table.stdout.index("Action7") < table.stdout.index("Action0")
    listed = json_output(run("audit", "ls", "--output", "json", "--limit", "3"))
    assert isinstance(listed, list)
    assert [e["action"] for e in listed] == ["Action7", "Action6", "Action5"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--account", "fraud-prod"], ["Action6", "Action5", "Action4"]),
        (["--principal", "carol", "--action", "Action2"], ["Action2"]),
        (["--outcome", "denied"], ["Action7"]),
        (["--since", "1h"], [*(f"Action{n}" for n in range(7, -1, -1)), "BootstrapOrganization"]),
        (["--until", "2000-01-01T00:00:00Z"], []),
        (
            ["--since", "2000-01-01T00:00:00"],
            [*(f"Action{n}" for n in range(7, -1, -1)), "BootstrapOrganization"],
        ),
    ],
)
def test_ls_filters(trail: Context, run: Run, options: list[str], expected: list[str]) -> None:
    listed = json_output(run("audit", "ls", "-o", "json", *options))
    assert isinstance(listed, list)
    assert [e["action"] for e in listed] == expected


def test_ls_refuses_a_time_it_cannot_read(trail: Context, run: Run) -> None:
    result = run("audit", "ls", "--since", "last tuesday")
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())
    assert "'last tuesday' is neither an ISO 8601 time nor a duration" in words


def test_export_writes_every_record_as_json_lines(trail: Context, run: Run, tmp_path: Path) -> None:
    out = tmp_path / "export" / "audit.jsonl"
    out.parent.mkdir()
    result = run("audit", "export", "--file", str(out))
    assert result.exit_code == 0, result.output
    assert "exported 9 audit records" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 10))  # the bootstrap record is first
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(lines))
    assert [p.name for p in out.parent.iterdir()] == ["audit.jsonl"]


def test_export_to_stdout_keeps_progress_on_stderr(trail: Context, run: Run) -> None:
    result = run("audit", "export", "-f", "-", "--principal", "dave")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["action"] for e in lines] == ["Action4", "Action5", "Action6"]
    assert "exported 3 audit records to stdout" in result.stderr


def test_verify_says_ok_or_names_every_finding(trail: Context, run: Run) -> None:
    write_digest(trail)
    ok = run("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK: 9 records and 1 signed digests verified")
    tamper(trail, "DELETE FROM audit_events WHERE seq IN (3, 4)")
    tamper(trail, "UPDATE audit_events SET account = 'x' WHERE seq = 6")
    failed = run("audit", "verify")
    assert failed.exit_code == 1
    assert "records 3-4 missing (sequence gap)" in failed.stdout
    assert "record 6: contents changed (hash mismatch)" in failed.stdout
    report = json.loads(run("audit", "verify", "-o", "json").stdout)
    assert report["ok"] is False and len(report["findings"]) == 2
