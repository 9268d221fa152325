"""`ketch assignments`: one principal and one target per assignment, listed and removed."""

from __future__ import annotations

import pytest
from typer.testing import Result

import ketch
from cli.results import Run, failed, json_output

PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def fraud(client: ketch.Client) -> ketch.Client:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.users.create("alice", password=PASSWORD)
    client.groups.create("fraud-ds")
    return client


def test_create_for_a_user_on_an_account(run: Run, fraud: ketch.Client) -> None:
    created = json_output(
        run(
            "assignments", "create", "--permission-set", "DataScientist",
            "--user", "alice", "--account", "fraud-dev", "-o", "json",
        )
    )  # fmt: skip

    assert (created["principal_type"], created["principal"]) == ("user", "alice")
    assert (created["target_type"], created["target"]) == ("account", "fraud-dev")
    assert fraud.assignments.get(created["id"]).permission_set == "DataScientist"
    simulated = fraud.iam.simulate(
        principal="alice",
        action="CreateTrainingJob",
        resource="krn:ketch:fraud-dev:training-job/x",
    )
    assert simulated.decision == "Allow"


def test_create_for_a_group_on_an_ou_and_the_root(run: Run, fraud: ketch.Client) -> None:
    on_ou = run(
        "assignments", "create", "--permission-set", "ReadOnly", "--group", "fraud-ds",
        "--ou", "teams/fraud",
    )  # fmt: skip
    assert on_ou.exit_code == 0, on_ou.output
    assert "teams/fraud" in on_ou.stdout
    on_root = json_output(
        run(
            "assignments", "create", "--permission-set", "ReadOnly", "--group", "fraud-ds",
            "--ou", "", "-o", "json",
        )
    )  # fmt: skip
    assert (on_root["target_type"], on_root["target"]) == ("ou", "")


def test_create_needs_exactly_one_principal_and_one_target(run: Run, fraud: ketch.Client) -> None:
    def usage_error(*options: str) -> str:
        result = run("assignments", "create", "--permission-set", "ReadOnly", *options)
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "--user or --group" in usage_error("--account", "fraud-dev")
    assert "--account or --ou" in usage_error("--user", "alice")
    assert "only one of --user and --group" in usage_error(
        "--user", "alice", "--group", "fraud-ds", "--account", "fraud-dev"
    )
    assert "only one of --account and --ou" in usage_error(
        "--user", "alice", "--account", "fraud-dev", "--ou", "teams"
    )
    assert [a.principal for a in fraud.assignments.iter_all()] == ["admin"]


def test_create_reports_what_does_not_exist(run: Run, fraud: ketch.Client) -> None:
    def create(*options: str) -> Result:
        return run("assignments", "create", *options)

    failed(
        create("--permission-set", "Nope", "--user", "alice", "--account", "fraud-dev"),
        "permission set 'Nope' does not exist",
        "[NotFound",
    )
    failed(
        create("--permission-set", "ReadOnly", "--user", "carol", "--account", "fraud-dev"),
        "user 'carol' does not exist",
    )
    failed(
        create("--permission-set", "ReadOnly", "--user", "alice", "--ou", "teams/nowhere"),
        "does not exist",
    )


def test_ls_filters_by_user_or_group(run: Run, fraud: ketch.Client) -> None:
    fraud.assignments.create(
        permission_set="DataScientist",
        principal_type="user",
        principal="alice",
        target_type="account",
        target="fraud-dev",
    )
    fraud.assignments.create(
        permission_set="ReadOnly",
        principal_type="group",
        principal="fraud-ds",
        target_type="ou",
        target="teams/fraud",
    )

    def principals(*options: str) -> list[str]:
        listed = json_output(run("assignments", "ls", "-o", "json", *options))
        return [a["principal"] for a in listed]

    assert principals() == ["admin", "alice", "fraud-ds"]
    assert principals("--user", "alice") == ["alice"]
    assert principals("--group", "fraud-ds") == ["fraud-ds"]
    table = run("assignments", "ls", "--group", "fraud-ds")
    assert table.exit_code == 0, table.output
    (of_group,) = fraud.assignments.list(principal_type="group", principal="fraud-ds").items
    assert of_group.id in table.stdout  # whole, even on a narrow terminal: rm needs it
    assert "fraud-ds" in table.stdout and "ReadOnly" in table.stdout
    assert "alice" not in table.stdout
    root = run("assignments", "ls", "--user", "admin")
    assert "(root)" in root.stdout
    assert run("assignments", "ls", "--user", "a", "--group", "b").exit_code == 2
    failed(run("assignments", "ls", "--group", "nobody"), "group 'nobody' does not exist")


def test_show_and_rm(run: Run, fraud: ketch.Client) -> None:
    assignment = fraud.assignments.create(
        permission_set="ReadOnly",
        principal_type="user",
        principal="alice",
        target_type="account",
        target="fraud-dev",
    )
    shown = json_output(run("assignments", "show", assignment.id, "-o", "json"))
    assert shown == assignment.model_dump(mode="json")

    refused = run("assignments", "rm", assignment.id)
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert fraud.assignments.get(assignment.id) == assignment

    removed = run("assignments", "rm", assignment.id, "--yes")
    assert removed.exit_code == 0, removed.output
    assert f"deleted assignment {assignment.id}" in removed.stdout
    failed(run("assignments", "show", assignment.id), "does not exist")
    failed(run("assignments", "rm", assignment.id, "-y"), "does not exist")
