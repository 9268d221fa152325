"""`ketch users`: passwords never on the command line unless asked, confirmation to delete."""

from __future__ import annotations

import pytest

import ketch
from cli.results import Run, failed, json_output

PASSWORD = "Correct-Horse-9-battery"


def _can_sign_in(client: ketch.Client, name: str, password: str) -> bool:
    other = ketch.Client(url=client.url, token=None, http_client=client._http)
    try:
        other.login(name, password)
    except ketch.Unauthenticated:
        return False
    return True


def test_create_reads_the_password_from_stdin(run: Run, client: ketch.Client) -> None:
    user = json_output(
        run(
            "users", "create", "alice", "--password-stdin", "--display-name", "Alice",
            "--email", "alice@example.com", "-o", "json",
            input=PASSWORD + "\n",
        )
    )  # fmt: skip

    assert (user["name"], user["display_name"], user["email"]) == (
        "alice",
        "Alice",
        "alice@example.com",
    )
    assert "password" not in user
    assert _can_sign_in(client, "alice", PASSWORD)


def test_create_prompts_for_a_hidden_password_at_a_terminal(run: Run, client: ketch.Client) -> None:
    result = run("users", "create", "alice", input=f"{PASSWORD}\n{PASSWORD}\n", terminal=True)

    assert result.exit_code == 0, result.output
    assert "Password" in result.stderr and "Repeat for confirmation" in result.stderr
    assert PASSWORD not in result.output
    assert "krn:ketch::user/alice" in result.stdout
    assert _can_sign_in(client, "alice", PASSWORD)


def test_create_without_a_terminal_or_stdin_is_a_usage_error(
    run: Run, client: ketch.Client
) -> None:
    result = run("users", "create", "alice", input=PASSWORD + "\n")

    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr
    with pytest.raises(ketch.NotFound):
        client.users.get("alice")
    both = run("users", "create", "alice", "--password", PASSWORD, "--password-stdin")
    assert both.exit_code == 2 and "not both" in both.stderr
    empty = run("users", "create", "alice", "--password-stdin", input="")
    assert empty.exit_code == 2 and "stdin is empty" in empty.stderr


def test_a_weak_password_is_the_servers_error(run: Run, client: ketch.Client) -> None:
    result = run("users", "create", "alice", "--password", "short")
    failed(result, "the password is too weak: use at least 12 characters", "[ValidationError")
    failed(run("users", "create", "Bad Name", "--password", PASSWORD), "user name 'Bad Name'")
    assert [u.name for u in client.users.iter_all()] == ["admin"]


def test_ls_and_show(run: Run, client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD, display_name="Alice")
    client.groups.create("release")
    client.groups.add_member("release", "alice")

    table = run("users", "ls")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "alice" in line)
    assert "Alice" in row and "local" in row and "release" in row
    listed = json_output(run("users", "ls", "--output", "json"))
    assert [u["name"] for u in listed] == ["admin", "alice"]
    assert listed[1]["groups"] == ["release"]

    shown = json_output(run("users", "show", "alice", "-o", "json"))
    assert shown == client.users.get("alice").model_dump(mode="json")
    failed(run("users", "show", "nobody"), "user 'nobody' does not exist", "[NotFound")


def test_update_fields_disable_and_reset_the_password(run: Run, client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)

    updated = json_output(
        run("users", "update", "alice", "--display-name", "A. Lice", "--disable", "-o", "json")
    )
    assert (updated["display_name"], updated["disabled"]) == ("A. Lice", True)
    assert not _can_sign_in(client, "alice", PASSWORD)
    enabled = json_output(run("users", "update", "alice", "--enable", "-o", "json"))
    assert (enabled["display_name"], enabled["disabled"]) == ("A. Lice", False)

    new = "Another-9-Secret-phrase"
    reset = run(
        "users", "update", "alice", "--set-password", input=f"{new}\n{new}\n", terminal=True
    )
    assert reset.exit_code == 0, reset.output
    assert new not in reset.output
    assert _can_sign_in(client, "alice", new)
    piped = run("users", "update", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert piped.exit_code == 0, piped.output
    assert _can_sign_in(client, "alice", PASSWORD)
    failed(run("users", "update", "alice", "--password-stdin", input="weak\n"), "too weak")


def test_rm_refuses_without_yes_when_stdin_is_not_a_terminal(
    run: Run, client: ketch.Client
) -> None:
    client.users.create("alice", password=PASSWORD)

    refused = run("users", "rm", "alice", input="y\n")

    assert refused.exit_code == 1
    assert "will not delete user alice and its assignments without --yes" in refused.stderr
    assert client.users.get("alice").name == "alice"


def test_rm_asks_at_a_terminal(run: Run, client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)

    declined = run("users", "rm", "alice", input="n\n", terminal=True)
    assert declined.exit_code == 1
    assert "Delete user alice and its assignments? [y/N]" in declined.stderr
    assert "nothing was changed" in declined.stderr
    assert client.users.get("alice").name == "alice"

    accepted = run("users", "rm", "alice", input="y\n", terminal=True)
    assert accepted.exit_code == 0, accepted.output
    assert "deleted user alice" in accepted.stdout
    with pytest.raises(ketch.NotFound):
        client.users.get("alice")


def test_rm_with_yes_does_not_ask(run: Run, client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)

    assert run("users", "rm", "alice", "--yes").exit_code == 0
    with pytest.raises(ketch.NotFound):
        client.users.get("alice")
    failed(run("users", "rm", "alice", "-y"), "user 'alice' does not exist")
    failed(run("users", "rm", "admin", "-y"), "explicitly denied by system.no-self-delete")
