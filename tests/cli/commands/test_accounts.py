"""`ketch accounts`: tables for people, JSON for scripts, the server's errors on stderr."""

from __future__ import annotations

import ketch
from cli.results import Run, failed, json_output


def test_create_needs_create_ous_for_a_missing_ou(run: Run, client: ketch.Client) -> None:
    refused = run("accounts", "create", "fraud-dev", "--ou", "teams/fraud", "--stage", "dev")

    failed(refused, "OU 'teams' does not exist", "--create-ous", "[NotFound, request req-")
    assert client.accounts.list().items == []

    created = run(
        "accounts", "create", "fraud-dev", "--ou", "teams/fraud", "--stage", "dev", "--create-ous"
    )

    assert created.exit_code == 0, created.output
    assert "fraud-dev" in created.stdout and "teams/fraud" in created.stdout
    assert client.accounts.get("fraud-dev").ou_path == "teams/fraud"
    listed = run("accounts", "ls")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "fraud-dev" in line)
    assert "dev" in row and "active" in row and "teams/fraud" in row


def test_create_with_name_tags_and_json_output(run: Run) -> None:
    account = json_output(
        run(
            "accounts", "create", "risk-prod", "--stage", "prod",
            "--display-name", "Risk (prod)", "--tag", "team=risk", "--tag", "cost=42",
            "--output", "json",
        )
    )  # fmt: skip
    assert account["id"] == "risk-prod"
    assert account["display_name"] == "Risk (prod)"
    assert account["tags"] == {"team": "risk", "cost": "42"}
    assert (account["stage"], account["status"], account["ou_path"]) == ("prod", "active", "")


def test_a_malformed_tag_is_a_usage_error(run: Run, client: ketch.Client) -> None:
    result = run("accounts", "create", "risk-prod", "--stage", "prod", "--tag", "no-equals")
    assert result.exit_code == 2
    assert "key=value" in result.stderr
    assert client.accounts.list().items == []


def test_an_invalid_id_is_a_clear_error_not_a_traceback(run: Run) -> None:
    result = run("accounts", "create", "Bad_ID", "--stage", "dev")
    failed(result, "id: account id 'Bad_ID' is invalid", "[ValidationError]")
    assert "Traceback" not in result.output


def test_an_unknown_stage_is_a_usage_error(run: Run) -> None:
    result = run("accounts", "create", "fraud-qa", "--stage", "qa")
    assert result.exit_code == 2
    assert "qa" in result.stderr


def test_a_duplicate_account_is_the_servers_conflict(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev")
    result = run("accounts", "create", "fraud-dev", "--stage", "prod", "--output", "json")
    failed(result, "account 'fraud-dev' already exists", "[Conflict")
    assert client.accounts.get("fraud-dev").stage == "dev"


def test_ls_is_a_table_or_json_and_filters(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.accounts.create("fraud-prod", stage="prod", ou="teams/fraud", tags={"tier": "1"})
    client.accounts.create("risk-dev", stage="dev")
    client.accounts.close("risk-dev")

    table = run("accounts", "ls")
    assert table.exit_code == 0, table.output
    assert "Accounts" in table.stdout
    for header in ("id", "stage", "status", "OU", "name", "tags"):
        assert header in table.stdout
    assert "tier=1" in table.stdout

    def ids(*options: str) -> list[str]:
        return [a["id"] for a in json_output(run("accounts", "ls", "--output", "json", *options))]

    assert ids() == ["fraud-dev", "fraud-prod", "risk-dev"]
    assert ids("--ou", "teams/fraud") == ["fraud-dev", "fraud-prod"]
    assert ids("--stage", "dev") == ["fraud-dev", "risk-dev"]
    assert ids("--status", "closed") == ["risk-dev"]
    assert ids("-o", "JSON", "--stage", "dev", "--status", "active") == ["fraud-dev"]


def test_ls_of_a_missing_ou_is_an_error(run: Run) -> None:
    failed(run("accounts", "ls", "--ou", "nowhere"), "OU 'nowhere' does not exist")


def test_show_describes_one_account(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", display_name="Fraud dev")

    table = run("accounts", "show", "fraud-dev")
    assert table.exit_code == 0, table.output
    assert "krn:ketch::account/fraud-dev" in table.stdout
    assert "Fraud dev" in table.stdout
    assert json_output(run("accounts", "show", "fraud-dev", "-o", "json")) == client.accounts.get(
        "fraud-dev"
    ).model_dump(mode="json")
    failed(run("accounts", "show", "nope-acct", "-o", "json"), "account 'nope-acct' does not exist")


def test_update_changes_name_stage_and_tags(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", tags={"team": "fraud"})

    only_name = json_output(
        run("accounts", "update", "fraud-dev", "--display-name", "Fraud", "-o", "json")
    )
    assert (only_name["display_name"], only_name["tags"]) == ("Fraud", {"team": "fraud"})

    result = run("accounts", "update", "fraud-dev", "--stage", "preprod", "--tag", "cost=7")
    assert result.exit_code == 0, result.output
    assert "preprod" in result.stdout
    account = client.accounts.get("fraud-dev")
    assert (account.display_name, account.stage, account.tags) == (
        "Fraud",
        "preprod",
        {"cost": "7"},
    )

    failed(run("accounts", "update", "nope-acct", "--stage", "dev"), "does not exist")


def test_move_changes_the_ou(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.ous.create("risk", parent="teams")

    moved = json_output(run("accounts", "move", "fraud-dev", "--ou", "teams/risk", "-o", "json"))

    assert moved["ou_path"] == "teams/risk"
    assert client.accounts.get("fraud-dev").ou_path == "teams/risk"
    failed(run("accounts", "move", "fraud-dev", "--ou", "teams/nowhere"), "does not exist")
    assert client.accounts.get("fraud-dev").ou_path == "teams/risk"


def test_close_asks_first_unless_yes(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev")

    piped = run("accounts", "close", "fraud-dev", input="y\n")  # no terminal: nobody to ask
    assert piped.exit_code == 1
    assert "--yes" in piped.output
    assert client.accounts.get("fraud-dev").status == "active"

    declined = run("accounts", "close", "fraud-dev", input="n\n", terminal=True)
    assert declined.exit_code == 1
    assert "Close account fraud-dev" in declined.output
    assert client.accounts.get("fraud-dev").status == "active"

    accepted = run("accounts", "close", "fraud-dev", input="y\n", terminal=True)
    assert accepted.exit_code == 0, accepted.output
    assert client.accounts.get("fraud-dev").status == "closed"


def test_close_with_yes_does_not_prompt(run: Run, client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev")

    closed = json_output(run("accounts", "close", "fraud-dev", "--yes", "--output", "json"))

    assert closed["status"] == "closed" and closed["closed_at"]
    failed(run("accounts", "close", "nope-acct", "-y"), "account 'nope-acct' does not exist")
