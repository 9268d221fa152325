"""``client.ous`` and ``client.accounts`` against the in-process app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

import ketch
from ketch.schemas.org import AccountStatus, Stage


@pytest.fixture
def list_requests(http: TestClient) -> Iterator[list[str]]:
    """The paths of the GET list requests the SDK sends (an httpx event hook)."""
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path in {"/api/v1/ous", "/api/v1/accounts"}:
            seen.append(request.url.path)

    http.event_hooks["request"].append(hook)
    yield seen
    http.event_hooks["request"].remove(hook)


# -- OUs ---------------------------------------------------------------------------


def test_create_get_and_find_by_path(client: ketch.Client) -> None:
    teams = client.ous.create("teams")
    fraud = client.ous.create("fraud", parent="teams")

    assert (fraud.path, fraud.parent_id, fraud.krn) == (
        "teams/fraud",
        teams.id,
        "krn:ketch::ou/teams/fraud",
    )
    assert client.ous.get(fraud.id) == fraud
    assert client.ous.get_by_path("teams/fraud") == fraud
    assert client.ous.get_by_path("/teams/fraud/") == fraud
    root = client.ous.get_by_path("")
    assert (root.path, root.parent_id) == ("", None)
    assert teams.parent_id == root.id


def test_missing_parents_need_the_flag(client: ketch.Client) -> None:
    with pytest.raises(ketch.NotFound) as caught:
        client.ous.create("fraud", parent="teams/risk")
    assert "teams" in caught.value.message
    assert "create_missing_parents" in caught.value.message
    assert [ou.path for ou in client.ous.iter_all()] == [""]

    fraud = client.ous.create("fraud", parent="teams/risk", create_missing_parents=True)
    assert fraud.path == "teams/risk/fraud"
    assert client.ous.get_by_path("teams/risk").id == fraud.parent_id


def test_duplicate_and_invalid_ous(client: ketch.Client) -> None:
    client.ous.create("teams")
    with pytest.raises(ketch.Conflict, match="'teams' already exists"):
        client.ous.create("teams")
    with pytest.raises(ketch.InvalidInput) as invalid:
        client.ous.create("bad name")
    assert invalid.value.message.startswith("name: OU name 'bad name' is invalid")
    with pytest.raises(ketch.NotFound):
        client.ous.get("no-such-id")
    with pytest.raises(ketch.NotFound):
        client.ous.get_by_path("teams/nope")


def test_create_with_a_client_token_is_idempotent(client: ketch.Client) -> None:
    first = client.ous.create("teams", client_token="tok-1")
    assert client.ous.create("teams", client_token="tok-1") == first
    with pytest.raises(ketch.Conflict, match="client_token"):
        client.ous.create("other", client_token="tok-1")


def test_list_filters_by_parent_and_path(client: ketch.Client) -> None:
    client.ous.create("fraud", parent="teams", create_missing_parents=True)
    client.ous.create("risk", parent="teams")
    client.ous.create("platform")

    children = client.ous.list(parent="teams")
    assert sorted(ou.path for ou in children.items) == ["teams/fraud", "teams/risk"]
    assert children.next_token is None
    assert [ou.path for ou in client.ous.list(path="teams/risk").items] == ["teams/risk"]
    top = sorted(ou.path for ou in client.ous.iter_all(parent=""))
    assert top == ["platform", "teams"]


def test_iter_all_walks_every_page(client: ketch.Client, list_requests: list[str]) -> None:
    names = [f"ou-{n}" for n in range(5)]
    for name in names:
        client.ous.create(name)
    first = client.ous.list(max_results=2)
    assert len(first.items) == 2 and first.next_token is not None
    list_requests.clear()

    walked = list(client.ous.iter_all(page_size=2))

    assert sorted(ou.path for ou in walked) == ["", *names]
    assert len({ou.id for ou in walked}) == 6
    assert len(list_requests) == 3


def test_rename_and_move_carry_the_subtree(client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)
    teams = client.ous.get_by_path("teams")
    client.ous.create("labs")
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud")

    renamed = client.ous.update(teams.id, name="groups")
    assert renamed.path == "groups"
    assert client.ous.get(fraud.id).path == "groups/fraud"
    assert client.accounts.get("fraud-dev").ou_path == "groups/fraud"

    moved = client.ous.update(teams.id, parent="labs")
    assert moved.path == "labs/groups"
    assert client.ous.get(fraud.id).path == "labs/groups/fraud"

    both = client.ous.update(fraud.id, name="risk", parent="")
    assert (both.path, both.parent_id) == ("risk", client.ous.get_by_path("").id)


def test_an_ou_cannot_move_below_itself_or_onto_a_sibling(client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)
    teams = client.ous.get_by_path("teams")
    client.ous.create("fraud")
    with pytest.raises(ketch.InvalidInput, match="below itself"):
        client.ous.update(teams.id, parent="teams/fraud")
    with pytest.raises(ketch.Conflict, match="already exists"):
        client.ous.update(fraud.id, parent="")
    with pytest.raises(ketch.InvalidInput, match="root"):
        client.ous.update(client.ous.get_by_path("").id, name="top")
    assert client.ous.get(fraud.id).path == "teams/fraud"


def test_delete_only_empty_ous(client: ketch.Client) -> None:
    fraud = client.ous.create("fraud", parent="teams", create_missing_parents=True)
    teams = client.ous.get_by_path("teams")
    with pytest.raises(ketch.Conflict, match="child OUs"):
        client.ous.delete(teams.id)
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud")
    with pytest.raises(ketch.Conflict, match="account"):
        client.ous.delete(fraud.id)

    client.accounts.move("fraud-dev", ou="")
    client.ous.delete(fraud.id)
    client.ous.delete(teams.id)

    with pytest.raises(ketch.NotFound):
        client.ous.get(fraud.id)
    assert [ou.path for ou in client.ous.iter_all()] == [""]
    with pytest.raises(ketch.InvalidInput, match="root"):
        client.ous.delete(client.ous.get_by_path("").id)


# -- accounts ----------------------------------------------------------------------


def test_create_and_get_an_account(client: ketch.Client) -> None:
    account = client.accounts.create(
        "fraud-dev",
        stage="dev",
        ou="teams/fraud",
        display_name="Fraud (dev)",
        tags={"team": "fraud"},
        create_missing_ous=True,
    )
    assert account.krn == "krn:ketch::account/fraud-dev"
    assert (account.stage, account.status) == (Stage.DEV, AccountStatus.ACTIVE)
    assert (account.display_name, account.tags) == ("Fraud (dev)", {"team": "fraud"})
    assert account.ou_path == "teams/fraud"
    assert account.ou_id == client.ous.get_by_path("teams/fraud").id
    assert account.closed_at is None
    assert client.accounts.get("fraud-dev") == account

    plain = client.accounts.create("plain-prod", stage=Stage.PROD)
    assert (plain.display_name, plain.ou_path, plain.tags) == ("plain-prod", "", {})


def test_a_missing_ou_needs_the_flag(client: ketch.Client) -> None:
    with pytest.raises(ketch.NotFound) as caught:
        client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud")
    assert "create_missing_ous" in caught.value.message
    with pytest.raises(ketch.NotFound):
        client.accounts.get("fraud-dev")


def test_invalid_input_is_caught_before_sending(client: ketch.Client, http: TestClient) -> None:
    sent: list[httpx.Request] = []
    http.event_hooks["request"].append(sent.append)

    with pytest.raises(ketch.InvalidInput) as bad_id:
        client.accounts.create("Bad_ID", stage="dev")
    assert bad_id.value.message.startswith("id: account id 'Bad_ID' is invalid")
    assert bad_id.value.details["errors"][0]["field"] == "id"
    with pytest.raises(ketch.InvalidInput, match="stage: 'qa' is not one of dev, preprod"):
        client.accounts.create("fraud-qa", stage="qa")
    with pytest.raises(ketch.InvalidInput, match="status"):
        client.accounts.list(status="gone")
    with pytest.raises(ketch.InvalidInput, match="tags"):
        client.accounts.update("fraud-dev", tags={"bad key!": "v"})
    with pytest.raises(ketch.InvalidInput, match="name"):
        client.ous.update("some-id", name="bad name")

    assert sent == []
    client.accounts.list()  # the hook does see what is sent
    assert [request.url.path for request in sent] == ["/api/v1/accounts"]


def test_list_filters_by_ou_stage_and_status(client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.accounts.create("fraud-prod", stage="prod", ou="teams/fraud")
    client.accounts.create("risk-dev", stage="dev", ou="teams")
    client.accounts.close("risk-dev")

    def ids(**filters: object) -> list[str]:
        return [a.id for a in client.accounts.list(**filters).items]  # type: ignore[arg-type]

    assert ids() == ["fraud-dev", "fraud-prod", "risk-dev"]
    assert ids(ou="teams/fraud") == ["fraud-dev", "fraud-prod"]
    assert ids(ou="teams") == ["risk-dev"]
    assert ids(stage="dev") == ["fraud-dev", "risk-dev"]
    assert ids(stage=Stage.PROD) == ["fraud-prod"]
    assert ids(status="closed") == ["risk-dev"]
    assert ids(ou="teams/fraud", stage="dev", status=AccountStatus.ACTIVE) == ["fraud-dev"]
    assert [a.id for a in client.accounts.iter_all(stage="dev", status="active")] == ["fraud-dev"]


def test_iter_all_walks_every_account_once(client: ketch.Client, list_requests: list[str]) -> None:
    ids = [f"acct-{n}" for n in range(5)]
    for account_id in reversed(ids):
        client.accounts.create(account_id, stage="sandbox")

    walked = [a.id for a in client.accounts.iter_all(page_size=2)]

    assert walked == ids
    assert len(list_requests) == 3
    list_requests.clear()
    assert [a.id for a in client.accounts.iter_all()] == ids
    assert len(list_requests) == 1


def test_update_changes_only_what_is_given(client: ketch.Client) -> None:
    created = client.accounts.create("fraud-dev", stage="dev", tags={"team": "fraud"})

    renamed = client.accounts.update("fraud-dev", display_name="Fraud")
    assert (renamed.display_name, renamed.stage, renamed.tags) == ("Fraud", Stage.DEV, created.tags)

    restaged = client.accounts.update("fraud-dev", stage="preprod", tags={"cost": "42"})
    assert (restaged.display_name, restaged.stage) == ("Fraud", Stage.PREPROD)
    assert restaged.tags == {"cost": "42"}
    assert client.accounts.update("fraud-dev", tags={}).tags == {}
    assert client.accounts.get("fraud-dev").updated_at >= created.updated_at
    with pytest.raises(ketch.NotFound):
        client.accounts.update("no-such-acct", display_name="x")


def test_move_puts_the_account_in_another_ou(client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    client.ous.create("risk", parent="teams")

    moved = client.accounts.move("fraud-dev", ou="teams/risk")

    assert (moved.ou_path, moved.ou_id) == ("teams/risk", client.ous.get_by_path("teams/risk").id)
    assert [a.id for a in client.accounts.list(ou="teams/fraud").items] == []
    with pytest.raises(ketch.NotFound):
        client.accounts.move("fraud-dev", ou="teams/nowhere")
    assert client.accounts.get("fraud-dev").ou_path == "teams/risk"


def test_close_keeps_the_account_and_is_repeatable(client: ketch.Client) -> None:
    client.accounts.create("fraud-dev", stage="dev")

    closed = client.accounts.close("fraud-dev")

    assert closed.status is AccountStatus.CLOSED
    assert closed.closed_at is not None
    assert client.accounts.get("fraud-dev") == closed
    assert client.accounts.close("fraud-dev").closed_at == closed.closed_at
    with pytest.raises(ketch.NotFound):
        client.accounts.close("no-such-acct")
