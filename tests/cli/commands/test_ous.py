"""`ketch ous`: OUs addressed by path; tables, JSON, and the server's errors on stderr."""

from __future__ import annotations

import ketch
from cli.results import Run, failed, json_output


def test_ls_shows_the_tree_sorted_by_path(run: Run, client: ketch.Client) -> None:
    client.ous.create("fraud", parent="teams", create_missing_parents=True)
    client.ous.create("platform")

    table = run("ous", "ls")
    assert table.exit_code == 0, table.output
    assert "OUs ('' is the root)" in table.stdout
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    assert [row.split("│")[1].strip() for row in rows] == ["", "platform", "teams", "teams/fraud"]

    listed = json_output(run("ous", "ls", "--output", "json"))
    assert [ou["path"] for ou in listed] == ["", "platform", "teams", "teams/fraud"]
    children = json_output(run("ous", "ls", "--parent", "teams", "-o", "json"))
    assert [ou["path"] for ou in children] == ["teams/fraud"]
    failed(run("ous", "ls", "--parent", "nowhere"), "OU 'nowhere' does not exist")


def test_create_below_a_parent(run: Run, client: ketch.Client) -> None:
    teams = json_output(run("ous", "create", "teams", "-o", "json"))
    assert (teams["path"], teams["krn"]) == ("teams", "krn:ketch::ou/teams")

    table = run("ous", "create", "fraud", "--parent", "teams")
    assert table.exit_code == 0, table.output
    assert "teams/fraud" in table.stdout
    assert client.ous.get_by_path("teams/fraud").parent_id == teams["id"]


def test_create_with_missing_parents_needs_the_flag(run: Run, client: ketch.Client) -> None:
    failed(run("ous", "create", "fraud", "--parent", "teams/risk"), "OU 'teams' does not exist")
    assert [ou.path for ou in client.ous.iter_all()] == [""]

    made = run("ous", "create", "fraud", "--parent", "teams/risk", "--create-missing-parents")

    assert made.exit_code == 0, made.output
    assert client.ous.get_by_path("teams/risk/fraud").name == "fraud"


def test_create_errors_come_from_the_server_or_the_sdk(run: Run, client: ketch.Client) -> None:
    client.ous.create("teams")
    failed(run("ous", "create", "teams"), "OU 'teams' already exists", "[Conflict")
    invalid = run("ous", "create", "bad name")
    failed(invalid, "name: OU name 'bad name' is invalid", "[ValidationError]")
    assert "Traceback" not in invalid.output


def test_show_by_path(run: Run, client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)

    table = run("ous", "show", "teams/fraud")
    assert table.exit_code == 0, table.output
    assert fraud.id in table.stdout and "krn:ketch::ou/teams/fraud" in table.stdout
    shown = json_output(run("ous", "show", "teams/fraud", "-o", "json"))
    assert shown == fraud.model_dump(mode="json")
    root = json_output(run("ous", "show", "", "-o", "json"))
    assert (root["path"], root["parent_id"]) == ("", None)
    failed(run("ous", "show", "teams/nope", "-o", "json"), "does not exist", "[NotFound")


def test_rename_keeps_children_below(run: Run, client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)

    renamed = json_output(run("ous", "rename", "teams", "groups", "-o", "json"))

    assert renamed["path"] == "groups"
    assert client.ous.get(fraud.id).path == "groups/fraud"
    failed(run("ous", "rename", "teams", "again"), "OU 'teams' does not exist")
    failed(run("ous", "rename", "", "top"), "root")


def test_move_below_another_ou_and_back_to_the_root(run: Run, client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)
    client.ous.create("labs")

    moved = run("ous", "move", "teams/fraud", "labs")
    assert moved.exit_code == 0, moved.output
    assert "labs/fraud" in moved.stdout
    assert client.ous.get(fraud.id).path == "labs/fraud"

    to_root = json_output(run("ous", "move", "labs/fraud", "", "-o", "json"))
    assert to_root["path"] == "fraud"
    failed(run("ous", "move", "labs", "labs"), "below itself", "[ValidationError")


def test_rm_deletes_only_empty_ous(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)

    failed(run("ous", "rm", "teams"), "still has child OUs")
    failed(run("ous", "rm", "teams/fraud"), "still holds 1 account(s)")
    client.accounts.move("fraud-dev", ou="")

    removed = run("ous", "rm", "teams/fraud")

    assert removed.exit_code == 0, removed.output
    assert "deleted OU teams/fraud" in removed.stdout
    assert sorted(ou.path for ou in client.ous.iter_all()) == ["", "teams"]
    failed(run("ous", "rm", "teams/fraud"), "does not exist")
