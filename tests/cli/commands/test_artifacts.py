"""`ketch artifacts`: upload, download, ls, describe and rm; a bar only on a terminal."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ketch
from cli.results import Run, failed, json_output
from ketch.cli.main import app


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return "fraud-dev"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A small tree: a nested file and a name with a space and accents."""
    root = tmp_path / "run"
    (root / "nested").mkdir(parents=True)
    (root / "nested" / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    (root / "métriques finales.json").write_text('{"auc": 0.91}')
    return root


def test_upload_then_ls_describe_and_download(
    run: Run, client: ketch.Client, account: str, folder: Path, tmp_path: Path
) -> None:
    uploaded = json_output(
        run("artifacts", "upload", str(folder), "ketch://fraud-dev/runs/1/", "-o", "json")
    )
    assert [a["key"] for a in uploaded] == [
        "runs/1/métriques finales.json",
        "runs/1/nested/weights.bin",
    ]
    weights = (folder / "nested" / "weights.bin").read_bytes()
    assert uploaded[1]["sha256"] == hashlib.sha256(weights).hexdigest()

    table = run("artifacts", "ls", "ketch://fraud-dev/runs/")
    assert table.exit_code == 0, table.output
    assert "runs/1/métriques finales.json" in table.stdout
    assert "10.0 kB" in table.stdout  # sizes for people
    assert uploaded[1]["sha256"][:12] in table.stdout
    assert "2 artifacts" in table.stdout
    listed = json_output(run("artifacts", "ls", "ketch://fraud-dev/runs/", "-o", "json"))
    assert [a["key"] for a in listed] == [a["key"] for a in uploaded]

    described = json_output(
        run("artifacts", "describe", "ketch://fraud-dev/runs/1/nested/weights.bin", "-o", "json")
    )
    assert (described["size"], described["sha256"]) == (len(weights), uploaded[1]["sha256"])
    record = run("artifacts", "describe", "ketch://fraud-dev/runs/1/nested/weights.bin")
    assert record.exit_code == 0 and uploaded[1]["sha256"] in record.stdout

    copy = tmp_path / "copy"
    result = run("artifacts", "download", "ketch://fraud-dev/runs/1/", str(copy))
    assert result.exit_code == 0, result.output
    assert "Downloaded 2 artifacts" in result.stdout
    assert (copy / "nested" / "weights.bin").read_bytes() == weights
    assert (copy / "métriques finales.json").read_text() == '{"auc": 0.91}'
    one = json_output(
        run("artifacts", "download", "ketch://fraud-dev/runs/1/nested/weights.bin",
            f"{tmp_path}/single/", "-o", "json")
    )  # fmt: skip
    assert [a["key"] for a in one] == ["runs/1/nested/weights.bin"]
    assert (tmp_path / "single" / "weights.bin").read_bytes() == weights


def test_a_single_file_upload_prints_a_table(run: Run, account: str, tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"m" * 2048)

    result = run("artifacts", "upload", str(tmp_path / "model.pt"), "ketch://fraud-dev/models/")

    assert result.exit_code == 0, result.output
    assert "Uploaded 1 artifact, 2.0 kB" in result.stdout
    assert "models/model.pt" in result.stdout
    assert result.stderr == ""  # no bar: stderr is not a terminal


def test_rm_asks_first(run: Run, client: ketch.Client, account: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("x")
    client.artifacts.upload(tmp_path / "x.csv", "ketch://fraud-dev/x.csv")

    refused = run("artifacts", "rm", "ketch://fraud-dev/x.csv")
    assert refused.exit_code == 1
    assert "without --yes" in refused.stderr
    cancelled = run("artifacts", "rm", "ketch://fraud-dev/x.csv", input="n\n", terminal=True)
    assert cancelled.exit_code == 1
    assert "Delete ketch://fraud-dev/x.csv (this cannot be undone)?" in cancelled.stderr
    assert "nothing was changed" in cancelled.stderr
    assert client.artifacts.describe("ketch://fraud-dev/x.csv").size == 1

    confirmed = run("artifacts", "rm", "ketch://fraud-dev/x.csv", input="y\n", terminal=True)
    assert confirmed.exit_code == 0, confirmed.output
    assert "deleted ketch://fraud-dev/x.csv" in confirmed.stdout
    with pytest.raises(ketch.NotFound):
        client.artifacts.describe("ketch://fraud-dev/x.csv")

    client.artifacts.upload(tmp_path / "x.csv", "ketch://fraud-dev/x.csv")
    assert run("artifacts", "rm", "ketch://fraud-dev/x.csv", "--yes").exit_code == 0
    failed(
        run("artifacts", "rm", "ketch://fraud-dev/x.csv", "--yes"), "does not exist", "[NotFound"
    )


def test_errors_are_one_line_on_stderr(run: Run, account: str, tmp_path: Path) -> None:
    failed(
        run("artifacts", "upload", str(tmp_path / "missing"), "ketch://fraud-dev/m"),
        "No such file or directory",
        str(tmp_path / "missing"),
    )
    (tmp_path / "f").write_text("f")
    failed(
        run("artifacts", "upload", str(tmp_path / "f"), "fraud-dev/f"), "ketch://<account>/<key>"
    )
    failed(run("artifacts", "describe", "ketch://fraud-dev/nope"), "does not exist", "[NotFound")
    failed(
        run("artifacts", "download", "ketch://fraud-dev/nope", str(tmp_path / "out")),
        "does not exist",
    )
    assert not (tmp_path / "out").exists()
    failed(run("artifacts", "rm", "ketch://fraud-dev/dir/", "--yes"), "is a prefix, not an object")


class TerminalStderrRunner(CliRunner):
    """A runner whose stderr says it is a terminal (the runner's own stream object)."""

    @contextmanager
    def isolation(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with super().isolation(*args, **kwargs) as streams:
            sys.stderr.isatty = lambda: True  # type: ignore[method-assign]
            yield streams


def test_a_terminal_gets_a_progress_bar(client: ketch.Client, account: str, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"b" * 3_000_000)
    runner = TerminalStderrRunner()

    up = runner.invoke(
        app,
        ["artifacts", "upload", str(tmp_path / "big.bin"), "ketch://fraud-dev/big.bin"],
        obj=lambda: client,
    )
    down = runner.invoke(
        app,
        ["artifacts", "download", "ketch://fraud-dev/big.bin", str(tmp_path / "copy.bin")],
        obj=lambda: client,
    )

    assert up.exit_code == 0, up.output
    assert down.exit_code == 0, down.output
    assert "upload" in up.stderr and "3.0/3.0 MB" in up.stderr
    assert "download" in down.stderr and "3.0/3.0 MB" in down.stderr
    assert "big.bin" in up.stdout and "big.bin" in down.stdout
    assert (tmp_path / "copy.bin").read_bytes() == b"b" * 3_000_000
