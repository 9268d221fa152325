"""cli.output: what every command's ``-o json`` writes."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import BaseModel

from ketch.cli.output import emit_json


class Point(BaseModel):
    step: int
    value: float


def test_json_output_is_valid_json_even_with_non_finite_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit_json([Point(step=1, value=0.5), Point(step=2, value=math.nan), {"x": -math.inf}])
    written = capsys.readouterr().out
    assert json.loads(written, parse_constant=lambda name: pytest.fail(f"bare {name}")) == [
        {"step": 1, "value": 0.5},
        {"step": 2, "value": "NaN"},
        {"x": "-Infinity"},
    ]
