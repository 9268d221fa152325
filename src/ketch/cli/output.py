"""Rendering for people (Rich tables) and for scripts (``--output json``)."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import pydantic_core
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output", "-o", help="table for people, json for scripts.", case_sensitive=False
    ),
]


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, StrEnum):
        return value.value
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def emit_json(data: Any) -> None:
    """Write ``data`` (models, lists of models, plain values) as JSON on stdout, nothing else.

    NaN and infinities (metrics may hold them) are written as the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"``, as the API sends them: bare ``NaN`` is not JSON.
    """
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    text = pydantic_core.to_json(data, indent=2, inf_nan_mode="strings").decode()
    sys.stdout.write(text + "\n")


def emit_table(
    rows: Iterable[BaseModel],
    columns: Sequence[tuple[str, str]],
    output: OutputFormat,
    *,
    title: str | None = None,
    whole: Collection[str] = (),
) -> None:
    """Rows as a table (``columns`` = (header, attribute)) or as a JSON list.

    On a narrow terminal the ``whole`` attributes are never shortened (ids that people
    copy into the next command); the other columns give way.
    """
    items = list(rows)
    if output is OutputFormat.JSON:
        emit_json(items)
        return
    table = Table(title=title)
    for header, attribute in columns:
        table.add_column(header, no_wrap=attribute in whole)
    for item in items:
        table.add_row(*(_plain(getattr(item, attribute)) for _, attribute in columns))
    console.print(table)


def emit_record(record: BaseModel, output: OutputFormat) -> None:
    """One resource as key/value lines or as a JSON object."""
    if output is OutputFormat.JSON:
        emit_json(record)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.model_dump().items():
        table.add_row(key, _plain(value))
    console.print(table)
