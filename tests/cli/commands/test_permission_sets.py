"""`ketch permission-sets`: policies from files or stdin, Cedar's errors shown as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

import ketch
from cli.results import Run, failed, json_output

TRAIN = 'Ketch::Action::"CreateTrainingJob"'
POLICY = f"permit(principal in ?principal, action == {TRAIN}, resource in ?resource);\n"
BUILTIN_SETS = ["AccountAdmin", "DataScientist", "MLEngineer", "OrgAdmin", "ReadOnly"]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "trainer.cedar"
    path.write_text(POLICY)
    return path


def test_create_from_a_file_and_show(run: Run, client: ketch.Client, policy_file: Path) -> None:
    created = json_output(
        run(
            "permission-sets", "create", "Trainer", "--policy-file", str(policy_file),
            "--description", "train only", "--allowed-cidr", "10.8.0.0/16", "-o", "json",
        )
    )  # fmt: skip

    assert (created["name"], created["description"], created["policy_text"]) == (
        "Trainer",
        "train only",
        POLICY,
    )
    assert (created["allowed_cidrs"], created["builtin"]) == (["10.8.0.0/16"], False)
    shown = run("permission-sets", "show", "Trainer")
    assert shown.exit_code == 0, shown.output
    assert "krn:ketch::permission-set/Trainer" in shown.stdout
    assert "CreateTrainingJob" in shown.stdout


def test_create_from_stdin(run: Run, client: ketch.Client) -> None:
    result = run("permission-sets", "create", "Trainer", "--policy-file", "-", input=POLICY)
    assert result.exit_code == 0, result.output
    assert client.permission_sets.get("Trainer").policy_text == POLICY


def test_invalid_cedar_is_a_clear_error(run: Run, client: ketch.Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.cedar"
    broken.write_text("permit(principal, action, resource")
    unknown = tmp_path / "unknown.cedar"
    unknown.write_text(POLICY.replace("CreateTrainingJob", "LaunchRocket"))

    syntax = run("permission-sets", "create", "Broken", "--policy-file", str(broken))
    stderr = failed(syntax, "permission set policy is not valid Cedar: ", "[ValidationError")
    assert "Traceback" not in syntax.output and "request req-" in stderr
    failed(
        run("permission-sets", "create", "Rocket", "--policy-file", str(unknown)),
        "does not validate against ketch's Cedar schema",
        "LaunchRocket",
    )
    assert [p.name for p in client.permission_sets.iter_all()] == BUILTIN_SETS


def test_a_missing_policy_file_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    missing = run("permission-sets", "create", "X", "--policy-file", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr and "--policy-file" in missing.stderr
    no_file = run("permission-sets", "create", "X")
    assert no_file.exit_code == 2 and "--policy-file" in no_file.stderr


def test_ls_shows_built_in_and_custom_sets(
    run: Run, client: ketch.Client, policy_file: Path
) -> None:
    client.permission_sets.create("Trainer", policy_text=POLICY, allowed_cidrs=["10.8.0.0/16"])

    names = [p["name"] for p in json_output(run("permission-sets", "ls", "-o", "json"))]
    assert names == sorted([*BUILTIN_SETS, "Trainer"])
    table = run("permission-sets", "ls")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "Trainer" in line)
    assert "10.8.0.0/16" in row and "False" in row
    assert "True" in next(line for line in table.stdout.splitlines() if "OrgAdmin" in line)


def test_update_policy_description_and_address_limit(
    run: Run, client: ketch.Client, policy_file: Path
) -> None:
    client.permission_sets.create("Trainer", policy_text=POLICY, allowed_cidrs=["10.8.0.0/16"])
    wider = POLICY.replace(f"action == {TRAIN}", "action")
    policy_file.write_text(wider)

    updated = json_output(
        run(
            "permission-sets", "update", "Trainer", "--policy-file", str(policy_file),
            "--description", "v2", "-o", "json",
        )
    )  # fmt: skip
    assert (updated["policy_text"], updated["description"]) == (wider, "v2")
    assert updated["allowed_cidrs"] == ["10.8.0.0/16"]

    lifted = json_output(run("permission-sets", "update", "Trainer", "--any-address", "-o", "json"))
    assert lifted["allowed_cidrs"] is None
    both = run(
        "permission-sets", "update", "Trainer", "--any-address", "--allowed-cidr", "1.2.3.0/24"
    )
    assert both.exit_code == 2
    failed(
        run("permission-sets", "update", "ReadOnly", "--description", "mine"),
        "'ReadOnly' is a built-in permission set",
    )


def test_rm_needs_confirmation(run: Run, client: ketch.Client) -> None:
    client.permission_sets.create("Trainer", policy_text=POLICY)

    refused = run("permission-sets", "rm", "Trainer")
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert client.permission_sets.get("Trainer").name == "Trainer"

    assert run("permission-sets", "rm", "Trainer", input="y\n", terminal=True).exit_code == 0
    with pytest.raises(ketch.NotFound):
        client.permission_sets.get("Trainer")
    failed(run("permission-sets", "rm", "OrgAdmin", "--yes"), "cannot be deleted")
