"""`ketch iam simulate`: the decision, the deciding policies, exit 0 on Allow, 1 on Deny."""

from __future__ import annotations

import json

import pytest
from typer.testing import Result

import ketch
from cli.results import Run, failed

JOB = "krn:ketch:fraud-prod:training-job/x"
PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def fraud(client: ketch.Client) -> ketch.Client:
    client.accounts.create("fraud-prod", stage="prod", ou="teams/fraud", create_missing_ous=True)
    client.users.create("alice", password=PASSWORD)
    return client


def _simulate(run: Run, principal: str, *options: str) -> Result:
    return run(
        "iam", "simulate", "--principal", principal, "--action", "CreateTrainingJob",
        "--resource", JOB, *options,
    )  # fmt: skip


def test_allow_exits_0_and_names_the_permit(run: Run, fraud: ketch.Client) -> None:
    result = _simulate(run, "admin")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Decision: Allow"
    assert "Deciding policies" in result.stdout
    row = next(line for line in lines if "OrgAdmin" in line)
    assert "permission-set" in row
    assert "Allowed by 1 permit policy." in result.stdout
    assert result.stderr == ""


def test_an_implicit_deny_exits_1_and_explains(run: Run, fraud: ketch.Client) -> None:
    result = _simulate(run, "alice")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "Decision: Deny"
    assert "Deciding policies" not in result.stdout
    assert "no permission set assigned to alice allows this" in result.stdout
    assert result.stderr == ""  # a Deny is an answer, not an error

    fraud.assignments.create(
        permission_set="DataScientist",
        principal_type="user",
        principal="alice",
        target_type="account",
        target="fraud-prod",
    )
    assert _simulate(run, "alice").exit_code == 0


def test_a_guardrail_deny_names_the_guardrail(run: Run, fraud: ketch.Client) -> None:
    fraud.guardrails.create(
        "no-training",
        policy_text='forbid(principal, action == Ketch::Action::"CreateTrainingJob", '
        "resource in ?resource);",
        ou="teams/fraud",
    )

    result = _simulate(run, "admin")

    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if "no-training" in line)
    assert "guardrail" in row
    assert "Denied explicitly by guardrail no-training" in result.stdout


def test_json_output_keeps_the_exit_codes(run: Run, fraud: ketch.Client) -> None:
    denied = _simulate(run, "alice", "--output", "json")
    assert denied.exit_code == 1
    assert json.loads(denied.stdout)["decision"] == "Deny"
    assert denied.stderr == ""

    allowed = _simulate(run, "admin", "-o", "json", "--source-ip", "10.1.2.3")
    assert allowed.exit_code == 0
    body = json.loads(allowed.stdout)
    assert body["decision"] == "Allow"
    assert [p["name"] for p in body["deciding_policies"]] == ["OrgAdmin"]
    assert set(body) == {"decision", "deciding_policies", "errors", "explanation"}


def test_instance_type_reaches_the_guardrails(run: Run, client: ketch.Client) -> None:
    client.accounts.create("sandbox-1", stage="sandbox")
    client.guardrails.create("sandbox-size", example="sandbox-instance-size-limit")

    def simulate(instance_type: str) -> int:
        return run(
            "iam", "simulate", "--principal", "admin", "--action", "CreateTrainingJob",
            "--resource", "krn:ketch:sandbox-1:training-job/x",
            "--instance-type", instance_type,
        ).exit_code  # fmt: skip

    assert simulate("cpu.small") == 0
    assert simulate("gpu.large") == 1


def test_bad_requests_are_errors_not_denies(run: Run, fraud: ketch.Client) -> None:
    typo = run(
        "iam", "simulate", "--principal", "alice", "--action", "CreateTrainingJb",
        "--resource", JOB,
    )  # fmt: skip
    failed(typo, "unknown action 'CreateTrainingJb'; did you mean CreateTrainingJob")
    failed(_simulate(run, "nobody"), "user 'nobody' does not exist", "[NotFound")
    missing = run("iam", "simulate", "--principal", "alice", "--action", "CreateTrainingJob")
    assert missing.exit_code == 2 and "--resource" in missing.stderr
