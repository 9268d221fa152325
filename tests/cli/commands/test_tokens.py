"""`ketch tokens`: the secret once on stdout, a warning on stderr, revocation confirmed."""

from __future__ import annotations

import json

import pytest

import ketch
from cli.results import Run, failed, json_output

PASSWORD = "Correct-Horse-9-battery"


def _client_with(client: ketch.Client, token: str) -> ketch.Client:
    return ketch.Client(url=client.url, token=token, http_client=client._http)


def test_create_prints_only_the_secret_on_stdout(run: Run, client: ketch.Client) -> None:
    result = run("tokens", "create", "--name", "ci", "--ttl-days", "7")

    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("ketch_") and "\n" not in secret
    assert "will not be shown again" in result.stderr
    assert secret not in result.stderr
    whoami = _client_with(client, secret).whoami()
    assert whoami.principal.name == "admin"
    assert whoami.token_id is not None and whoami.token_id in result.stderr

    listed = run("tokens", "ls")
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout
    as_json = run("tokens", "ls", "-o", "json")
    assert secret.split("_", 2)[2] not in as_json.stdout  # the secret part is never shown again
    assert whoami.token_id in {t["id"] for t in json_output(as_json)}


def test_create_with_limits_and_json_output(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev")
    result = run(
        "tokens", "create", "--name", "reader", "--read-only",
        "--account", "fraud-dev", "-o", "json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert (issued["read_only"], issued["account_ids"]) == (True, ["fraud-dev"])
    assert "will not be shown again" in result.stderr
    assert "read-only" in result.stderr and "fraud-dev" in result.stderr
    reader = _client_with(client, issued["token"])
    assert reader.whoami().token_read_only is True

    failed(run("tokens", "create", "--account", "nope-acct"), "no such account: nope-acct")
    failed(run("tokens", "create", "--ttl-days", "0"), "ttl_days: ", "[ValidationError")


def test_ls_for_another_user(run: Run, client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)
    alice = ketch.Client(url=client.url, token=None, http_client=client._http)
    alice.login("alice", PASSWORD)

    tokens = json_output(run("tokens", "ls", "--user", "alice", "-o", "json"))

    assert [t["user"] for t in tokens] == ["alice"]
    mine = json_output(run("tokens", "ls", "-o", "json"))
    assert {t["user"] for t in mine} == {"admin"}
    failed(run("tokens", "ls", "--user", "nobody"), "does not exist")


def test_revoke_needs_confirmation_and_stops_the_token(run: Run, client: ketch.Client) -> None:
    issued = client.tokens.create(name="ci")
    holder = _client_with(client, issued.token)

    refused = run("tokens", "revoke", issued.token_id)
    assert refused.exit_code == 1
    assert f"will not revoke token {issued.token_id} without --yes" in refused.stderr
    declined = run("tokens", "revoke", issued.token_id, input="n\n", terminal=True)
    assert declined.exit_code == 1
    assert holder.whoami().token_id == issued.token_id

    revoked = json_output(run("tokens", "revoke", issued.token_id, "--yes", "-o", "json"))
    assert revoked["revoked_at"] is not None
    failed(run("tokens", "revoke", "nope", "-y"), "token 'nope' does not exist")
    with pytest.raises(ketch.Unauthenticated):
        holder.whoami()


def test_revoke_at_a_terminal_when_confirmed(run: Run, client: ketch.Client) -> None:
    issued = client.tokens.create(name="ci")

    accepted = run("tokens", "revoke", issued.token_id, input="y\n", terminal=True)

    assert accepted.exit_code == 0, accepted.output
    assert f"Revoke token {issued.token_id}?" in accepted.stderr
    assert next(t for t in client.tokens.iter_all() if t.id == issued.token_id).revoked_at
