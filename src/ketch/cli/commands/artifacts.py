"""`ketch artifacts`: files and folders in and out of an account's artifact store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort
from ketch.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    emit_record,
    emit_table,
    err_console,
)
from ketch.schemas.artifacts import Artifact
from ketch.schemas.common import MAX_PAGE_SIZE
from ketch.sdk.resources.artifacts import Progress as ProgressCallback

app = typer.Typer(
    help="Artifacts: files in an account's store, addressed as ketch://<account>/<key>.",
    no_args_is_help=True,
)

COLUMNS = (("key", "key"), ("size", "size"), ("modified", "modified"), ("sha256", "sha256"))
UriArg = Annotated[
    str, typer.Argument(help="ketch://<account>/<key>, e.g. ketch://fraud-dev/x.csv")
]
PrefixArg = Annotated[
    str,
    typer.Argument(help="ketch://<account>/<prefix>; ends in '/' for a folder, e.g. .../data/"),
]


class _Row(BaseModel):
    """An artifact as a table row: its size for people, its checksum shortened."""

    key: str
    size: str
    modified: datetime
    sha256: str

    @classmethod
    def of(cls, artifact: Artifact) -> _Row:
        return cls(
            key=artifact.key,
            size=decimal(artifact.size),
            modified=artifact.modified,
            sha256=artifact.sha256[:12] if artifact.sha256 else "",
        )


def _emit(artifacts: list[Artifact], output: OutputFormat, *, title: str) -> None:
    if output is OutputFormat.JSON:
        emit_json(artifacts)
        return
    emit_table([_Row.of(a) for a in artifacts], COLUMNS, output, title=title, whole=("key",))


def _total(artifacts: list[Artifact]) -> str:
    count = len(artifacts)
    return f"{count} artifact{'' if count == 1 else 's'}, {decimal(sum(a.size for a in artifacts))}"


@contextmanager
def _local_errors() -> Iterator[None]:
    """Turn a local file error (missing, unreadable, unwritable) into ``Error: ...``, exit 1."""
    try:
        yield
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[red]Error:[/red] {escape(exc.strerror or str(exc))}{escape(str(where))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc


@contextmanager
def _transfer_bar(verb: str) -> Iterator[ProgressCallback | None]:
    """A bar of bytes, speed and time left on stderr when it is a terminal; else nothing.

    Scripts and pipes get no bar: their stderr stays free for errors.
    """
    if not sys.stderr.isatty():
        yield None
        return
    bar = Progress(
        TextColumn(verb),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    with bar:
        task = bar.add_task(verb, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


@app.command("upload")
def upload_artifacts(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A file, or a directory to upload whole.")],
    uri: Annotated[
        str,
        typer.Argument(
            help="Where: ketch://<account>/<key> for a file; a directory's files go below it "
            "at their relative paths. A file sent to a URI ending in '/' keeps its name."
        ),
    ],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Upload a file, or every file below a directory (symbolic links are skipped)."""
    with reported_errors(), _local_errors(), _transfer_bar("upload") as progress:
        artifacts = get_client(ctx).artifacts.upload(path, uri, progress=progress)
    _emit(artifacts, output, title=f"Uploaded {_total(artifacts)}")


@app.command("download")
def download_artifacts(
    ctx: typer.Context,
    uri: Annotated[
        str,
        typer.Argument(
            help="One object, or a prefix ending in '/' for everything under it, e.g. "
            "ketch://fraud-dev/models/v3/"
        ),
    ],
    path: Annotated[
        str,
        typer.Argument(
            help="The file to write, or a directory to write into (a prefix keeps its layout)."
        ),
    ],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Download an object or a prefix; each file appears only once verified."""
    with reported_errors(), _local_errors(), _transfer_bar("download") as progress:
        artifacts = get_client(ctx).artifacts.download(uri, path, progress=progress)
    _emit(artifacts, output, title=f"Downloaded {_total(artifacts)} to {path}")


@app.command("ls")
def list_artifacts(
    ctx: typer.Context, uri: PrefixArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """List the artifacts whose keys start with the URI's key."""
    with reported_errors():
        artifacts = list(get_client(ctx).artifacts.iter_all(uri, page_size=MAX_PAGE_SIZE))
    _emit(artifacts, output, title=f"Artifacts under {uri} ({_total(artifacts)})")


@app.command("describe")
def describe_artifact(
    ctx: typer.Context, uri: UriArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Show one artifact's size, SHA-256 and time, without downloading it."""
    with reported_errors():
        artifact = get_client(ctx).artifacts.describe(uri)
    emit_record(artifact, output)


@app.command("rm")
def delete_artifact(ctx: typer.Context, uri: UriArg, yes: YesOption = False) -> None:
    """Delete one artifact. Cannot be undone."""
    confirm_or_abort(f"delete {uri} (this cannot be undone)", yes=yes)
    with reported_errors():
        get_client(ctx).artifacts.delete(uri)
    console.print(f"deleted {uri}", highlight=False, markup=False)
