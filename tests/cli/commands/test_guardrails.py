"""`ketch guardrails`: from a policy file or a shipped example, on an OU."""

from __future__ import annotations

from pathlib import Path

import pytest

import ketch
from cli.results import Run, failed, json_output

NO_TRAINING = (
    'forbid(principal, action == Ketch::Action::"CreateTrainingJob", resource in ?resource);\n'
)
JOB = "krn:ketch:fraud-dev:training-job/x"


@pytest.fixture
def fraud(client: ketch.Client) -> ketch.Client:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return client


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "no-training.cedar"
    path.write_text(NO_TRAINING)
    return path


def test_create_from_a_file_on_an_ou(run: Run, fraud: ketch.Client, policy_file: Path) -> None:
    created = json_output(
        run(
            "guardrails", "create", "no-training", "--policy-file", str(policy_file),
            "--ou", "teams/fraud", "--description", "budget", "-o", "json",
        )
    )  # fmt: skip

    assert (created["name"], created["ou"], created["policy_text"]) == (
        "no-training",
        "teams/fraud",
        NO_TRAINING,
    )
    denied = fraud.iam.simulate(principal="admin", action="CreateTrainingJob", resource=JOB)
    assert denied.decision == "Deny"
    table = run("guardrails", "ls")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "no-training" in line)
    assert "teams/fraud" in row and "budget" in row


def test_examples_and_create_from_one(run: Run, client: ketch.Client) -> None:
    examples = json_output(run("guardrails", "examples", "-o", "json"))
    names = [e["name"] for e in examples]
    assert names == ["prod-endpoint-deletes-by-release-only", "sandbox-instance-size-limit"]
    table = run("guardrails", "examples")
    assert table.exit_code == 0 and "sandbox-instance-size-limit" in table.stdout

    created = json_output(
        run("guardrails", "create", "sandbox", "--example", names[1], "-o", "json")
    )
    assert (created["ou"], created["policy_text"]) == ("", examples[1]["policy_text"])
    failed(
        run("guardrails", "create", "other", "--example", "nope"),
        "no example guardrail 'nope'; examples: prod-endpoint-deletes-by-release-only",
    )


def test_create_needs_exactly_one_source(run: Run, policy_file: Path) -> None:
    neither = run("guardrails", "create", "g")
    assert neither.exit_code == 2
    assert "exactly one of --policy-file and --example" in neither.stderr
    both = run(
        "guardrails", "create", "g", "--policy-file", str(policy_file),
        "--example", "sandbox-instance-size-limit",
    )  # fmt: skip
    assert both.exit_code == 2


def test_invalid_guardrail_text_is_the_servers_error(
    run: Run, client: ketch.Client, tmp_path: Path
) -> None:
    permit = tmp_path / "permit.cedar"
    permit.write_text(NO_TRAINING.replace("forbid", "permit"))
    broken = tmp_path / "broken.cedar"
    broken.write_text("forbid(")

    failed(
        run("guardrails", "create", "g", "--policy-file", str(permit)),
        "a guardrail only forbids",
        "[ValidationError",
    )
    failed(
        run("guardrails", "create", "g", "--policy-file", "-", input="forbid("),
        "guardrail policy is not valid Cedar",
    )
    assert client.guardrails.list().items == []


def test_show_update_and_rm(run: Run, fraud: ketch.Client, policy_file: Path) -> None:
    fraud.guardrails.create("no-training", policy_text=NO_TRAINING, ou="teams/fraud")
    shown = run("guardrails", "show", "no-training")
    assert shown.exit_code == 0 and "krn:ketch::guardrail/no-training" in shown.stdout

    updated = json_output(
        run("guardrails", "update", "no-training", "--description", "v2", "-o", "json")
    )
    assert (updated["description"], updated["policy_text"]) == ("v2", NO_TRAINING)

    refused = run("guardrails", "rm", "no-training")
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert run("guardrails", "rm", "no-training", input="y\n", terminal=True).exit_code == 0
    allowed = fraud.iam.simulate(principal="admin", action="CreateTrainingJob", resource=JOB)
    assert allowed.decision == "Allow"
    failed(run("guardrails", "show", "no-training"), "guardrail 'no-training' does not exist")
