"""Job specs: everything the issue lists as bad input is refused with the field's name."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ketch.schemas.jobs import JobMetrics, ProcessingJobCreate, TrainingJobCreate


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "churn-train-1",
        "code": {
            "source_uri": "ketch://fraud-dev/code/sourcedir.tar.gz",
            "entry_point": "train.py",
        },
        "inputs": {"train": "ketch://fraud-dev/datasets/churn/"},
        "output_uri": "ketch://fraud-dev/jobs/churn/",
        "hyperparameters": {"epochs": 10, "lr": 0.01, "early_stop": True, "optimizer": "adam"},
        "instance_type": "cpu.small",
    }
    body.update(changes)
    return body


def test_a_plain_spec_is_accepted_with_sane_defaults() -> None:
    job = TrainingJobCreate.model_validate(spec())
    assert job.hyperparameters == {
        "epochs": 10,
        "lr": 0.01,
        "early_stop": True,
        "optimizer": "adam",
    }
    assert isinstance(job.hyperparameters["early_stop"], bool)
    assert job.instance_count == 1
    assert job.max_runtime_seconds == 86_400
    assert job.retry_strategy.maximum_retry_attempts == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instance_type": "cpu.huge"}, "instance_type"),
        ({"instance_count": 0}, "instance_count"),
        ({"instance_count": 10_000}, "instance_count"),
        ({"instance_count": 2}, "instance_count"),  # one host runs a job, for now
        ({"max_runtime_seconds": -1}, "max_runtime_seconds"),
        ({"max_runtime_seconds": 10**12}, "max_runtime_seconds"),
        ({"hyperparameters": {"layers": [1, 2]}}, "hyperparameters"),
        ({"hyperparameters": {"config": {"a": 1}}}, "hyperparameters"),
        ({"hyperparameters": {"lr": None}}, "hyperparameters"),
        ({"hyperparameters": {"lr": float("nan")}}, "hyperparameters"),
        ({"hyperparameters": {"bad name!": 1}}, "hyperparameters"),
        ({"hyperparameters": {f"h{i}": i for i in range(101)}}, "hyperparameters"),
        ({"hyperparameters": {"text": "x" * 2501}}, "hyperparameters"),
        ({"inputs": {"train": "s3://bucket/data"}}, "inputs"),
        ({"inputs": {"train": "ketch://fraud-dev/../fraud-prod/data"}}, "inputs"),
        ({"inputs": {"bad channel": "ketch://fraud-dev/x"}}, "inputs"),
        ({"output_uri": "/tmp/out"}, "output_uri"),
        ({"environment": {"SM_MODEL_DIR": "/etc"}}, "environment"),
        ({"environment": {"ketch_token": "x"}}, "environment"),
        ({"environment": {"1BAD": "x"}}, "environment"),
        ({"code": {"source_uri": "ketch://fraud-dev/x.tgz", "entry_point": "../train.py"}}, "code"),
        ({"code": {"source_uri": "ketch://fraud-dev/x.tgz", "entry_point": "rm -rf /"}}, "code"),
        ({"metric_definitions": [{"name": "auc", "regex": "auc=("}]}, "metric_definitions"),
        ({"metric_definitions": [{"name": "auc", "regex": "auc=[0-9.]+"}]}, "metric_definitions"),
        ({"name": "../x"}, "name"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TrainingJobCreate.model_validate(spec(**changes))
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}


def test_module_function_entry_points_and_processing_outputs() -> None:
    job = ProcessingJobCreate.model_validate(
        spec(
            code={
                "source_uri": "ketch://fraud-dev/code/src.tar.gz",
                "entry_point": "prep.main:run",
            },
            outputs={"features": "ketch://fraud-dev/features/"},
        )
    )
    assert job.code.entry_point == "prep.main:run"
    assert job.outputs == {"features": "ketch://fraud-dev/features/"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hyperparameters": {"a:b": 1}}, "hyperparameters"),
        ({"hyperparameters": {"lr": 1, "LR": 2}}, "hyperparameters"),
        ({"inputs": {"train": "ketch://fraud-dev/a/", "TRAIN": "ketch://fraud-dev/b/"}}, "inputs"),
        ({"environment": {"PYTHONPATH": "/tmp"}}, "environment"),
        ({"environment": {"NOTE": "x" * 2049}}, "environment"),
    ],
)
def test_what_the_job_contract_would_refuse_is_refused_at_submission(
    changes: dict[str, Any], field: str
) -> None:
    """One set of job rules (``ketch.core.job_rules``): a job the API accepts never fails
    at start for a name or a value the contract cannot use."""
    with pytest.raises(ValidationError) as caught:
        TrainingJobCreate.model_validate(spec(**changes))
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}


def test_non_finite_metric_values_travel_as_strings_and_come_back_as_floats() -> None:
    at = datetime(2026, 11, 24, tzinfo=UTC)
    values = [0.5, math.nan, math.inf, -math.inf]
    metrics = JobMetrics(
        job="krn:ketch:fraud-dev:training-job/x",
        series={"loss": [{"value": v, "timestamp": at, "attempt": 1} for v in values]},  # type: ignore[misc]
    )
    text = metrics.model_dump_json()
    assert '"value":"NaN"' in text and '"value":"-Infinity"' in text
    back = [p.value for p in JobMetrics.model_validate_json(text).series["loss"]]
    assert back[0] == 0.5 and math.isnan(back[1]) and back[2:] == [math.inf, -math.inf]
