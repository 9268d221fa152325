"""`ketch groups`: create, list, members, and deletion only when confirmed."""

from __future__ import annotations

import pytest

import ketch
from cli.results import Run, failed, json_output

PASSWORD = "Correct-Horse-9-battery"


def test_create_show_and_ls(run: Run, client: ketch.Client) -> None:
    created = json_output(
        run("groups", "create", "release", "--description", "ships to prod", "-o", "json")
    )
    assert (created["name"], created["krn"], created["members"]) == (
        "release",
        "krn:ketch::group/release",
        [],
    )
    client.groups.create("data")

    table = run("groups", "ls")
    assert table.exit_code == 0, table.output
    assert "ships to prod" in table.stdout
    assert [g["name"] for g in json_output(run("groups", "ls", "-o", "json"))] == [
        "data",
        "release",
    ]
    assert json_output(run("groups", "show", "release", "-o", "json")) == created
    failed(run("groups", "create", "release"), "group 'release' already exists", "[Conflict")
    failed(run("groups", "create", "Bad Name"), "group name 'Bad Name' is invalid")
    failed(run("groups", "show", "nope"), "group 'nope' does not exist")


def test_add_and_remove_members(run: Run, client: ketch.Client) -> None:
    client.groups.create("release")
    for name in ("alice", "bob"):
        client.users.create(name, password=PASSWORD)

    assert run("groups", "add-member", "release", "bob").exit_code == 0
    added = json_output(run("groups", "add-member", "release", "alice", "-o", "json"))
    assert added["members"] == ["alice", "bob"]
    table = run("groups", "ls")
    assert "alice, bob" in table.stdout

    removed = json_output(run("groups", "remove-member", "release", "alice", "-o", "json"))
    assert removed["members"] == ["bob"]
    assert client.users.get("alice").groups == []
    failed(
        run("groups", "remove-member", "release", "alice"),
        "user 'alice' is not a member of group 'release'",
    )
    failed(run("groups", "add-member", "release", "carol"), "user 'carol' does not exist")


def test_rm_needs_confirmation(run: Run, client: ketch.Client) -> None:
    client.groups.create("release")

    refused = run("groups", "rm", "release")
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr and refused.stdout == ""
    declined = run("groups", "rm", "release", input="n\n", terminal=True)
    assert declined.exit_code == 1
    assert client.groups.get("release").name == "release"

    accepted = run("groups", "rm", "release", input="y\n", terminal=True)
    assert accepted.exit_code == 0, accepted.output
    assert "deleted group release" in accepted.stdout
    with pytest.raises(ketch.NotFound):
        client.groups.get("release")
    failed(run("groups", "rm", "release", "--yes"), "group 'release' does not exist")
