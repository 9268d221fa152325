"""``client.users``, ``client.groups`` and ``client.tokens`` against the in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

import ketch
from support.settings import TEST_HOST

PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def sent(http: TestClient) -> Iterator[list[httpx.Request]]:
    """Every request the SDK sends from now on (an httpx event hook)."""
    requests: list[httpx.Request] = []
    http.event_hooks["request"].append(requests.append)
    yield requests
    http.event_hooks["request"].remove(requests.append)


@pytest.fixture
def sign_in(http: TestClient) -> Callable[..., ketch.Client]:
    """``sign_in(name, password)``: a second SDK client, signed in as that user."""

    def make(name: str, password: str = PASSWORD) -> ketch.Client:
        other = ketch.Client(url=f"http://{TEST_HOST}", token=None, http_client=http)
        other.login(name, password)
        return other

    return make


def _server_message(http: TestClient, token: str, method: str, path: str, body: object) -> str:
    """What the server itself says about ``body`` (sent raw, around the SDK)."""
    response = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]["message"]
    return message


# -- users ---------------------------------------------------------------------------


def test_create_get_and_list_users(client: ketch.Client) -> None:
    alice = client.users.create(
        "alice", password=PASSWORD, display_name="Alice", email="alice@example.com"
    )

    assert (alice.name, alice.krn, alice.source) == ("alice", "krn:ketch::user/alice", "local")
    assert (alice.display_name, alice.email, alice.disabled, alice.groups) == (
        "Alice",
        "alice@example.com",
        False,
        [],
    )
    assert client.users.get("alice") == alice
    assert [u.name for u in client.users.list().items] == ["admin", "alice"]
    with pytest.raises(ketch.Conflict, match="user 'alice' already exists"):
        client.users.create("alice", password=PASSWORD)
    with pytest.raises(ketch.NotFound, match="user 'nobody' does not exist"):
        client.users.get("nobody")


def test_a_weak_password_is_refused_with_the_rule(client: ketch.Client) -> None:
    with pytest.raises(ketch.InvalidInput) as weak:
        client.users.create("bob", password="short")
    assert weak.value.message.startswith("the password is too weak: use at least 12 characters")
    assert weak.value.status_code == 400  # type: ignore[attr-defined]  # it was the server
    with pytest.raises(ketch.InvalidInput, match="not containing the user name"):
        client.users.create("bob", password="Bob-is-9-great-bob")
    with pytest.raises(ketch.NotFound):
        client.users.get("bob")


def test_bad_input_fails_before_sending_with_the_servers_message(
    client: ketch.Client, http: TestClient, admin_token: str, sent: list[httpx.Request]
) -> None:
    too_long = "a" * 64
    with pytest.raises(ketch.InvalidInput) as local:
        client.users.create(too_long, password=PASSWORD)
    with pytest.raises(ketch.InvalidInput) as ttl:
        client.tokens.create(ttl_days=0)
    with pytest.raises(ketch.InvalidInput, match="name: must not be empty"):
        client.users.get("")
    with pytest.raises(ketch.InvalidInput, match="user: must not be empty"):
        client.groups.remove_member("release", "")
    assert sent == []

    body = {"name": too_long, "password": PASSWORD}
    assert local.value.message == _server_message(http, admin_token, "POST", "/api/v1/users", body)
    assert local.value.message.startswith("name: ")
    assert ttl.value.message == _server_message(
        http, admin_token, "POST", "/api/v1/tokens", {"ttl_days": 0}
    )


def test_iter_all_walks_every_page_of_users(
    client: ketch.Client, sent: list[httpx.Request]
) -> None:
    names = [f"user-{n}" for n in range(5)]
    for name in names:
        client.users.create(name, password=PASSWORD)
    sent.clear()

    walked = [u.name for u in client.users.iter_all(page_size=2)]

    assert walked == ["admin", *names]
    assert len(sent) == 3
    assert all(r.url.params["max_results"] == "2" for r in sent)


def test_update_changes_what_is_given_and_disable_stops_sign_in(
    client: ketch.Client, sign_in: Callable[..., ketch.Client]
) -> None:
    client.users.create("alice", password=PASSWORD, display_name="Alice")

    renamed = client.users.update("alice", email="a@example.com")
    assert (renamed.display_name, renamed.email) == ("Alice", "a@example.com")

    new_password = "Another-9-Secret-phrase"
    client.users.update("alice", password=new_password)
    with pytest.raises(ketch.Unauthenticated):
        sign_in("alice", PASSWORD)
    alice = sign_in("alice", new_password)
    assert alice.whoami().principal.name == "alice"

    assert client.users.update("alice", disabled=True).disabled is True
    with pytest.raises(ketch.Unauthenticated):
        sign_in("alice", new_password)
    with pytest.raises(ketch.Unauthenticated):
        alice.whoami()  # the token of a disabled user stops working too
    assert client.users.update("alice", disabled=False).disabled is False
    with pytest.raises(ketch.InvalidInput, match="too weak"):
        client.users.update("alice", password="weak")


def test_delete_a_user_but_not_yourself(client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)
    client.groups.create("release")
    client.groups.add_member("release", "alice")

    client.users.delete("alice")

    with pytest.raises(ketch.NotFound):
        client.users.get("alice")
    assert client.groups.get("release").members == []
    with pytest.raises(ketch.NotFound):
        client.users.delete("alice")
    with pytest.raises(ketch.Forbidden, match=r"system\.no-self-delete"):
        client.users.delete("admin")
    assert client.users.get("admin").name == "admin"


# -- groups --------------------------------------------------------------------------


def test_groups_and_their_members(client: ketch.Client) -> None:
    client.users.create("alice", password=PASSWORD)
    client.users.create("bob", password=PASSWORD)
    release = client.groups.create("release", description="may delete prod endpoints")
    assert (release.krn, release.description, release.members) == (
        "krn:ketch::group/release",
        "may delete prod endpoints",
        [],
    )

    client.groups.add_member("release", "bob")
    both = client.groups.add_member("release", "alice")
    assert both.members == ["alice", "bob"]
    assert client.groups.add_member("release", "alice").members == ["alice", "bob"]
    assert client.users.get("alice").groups == ["release"]

    assert client.groups.remove_member("release", "alice").members == ["bob"]
    with pytest.raises(ketch.NotFound, match="'alice' is not a member of group 'release'"):
        client.groups.remove_member("release", "alice")
    with pytest.raises(ketch.NotFound, match="user 'carol' does not exist"):
        client.groups.add_member("release", "carol")
    with pytest.raises(ketch.Conflict, match="group 'release' already exists"):
        client.groups.create("release")


def test_list_and_delete_groups(client: ketch.Client, sent: list[httpx.Request]) -> None:
    for name in ("ops", "data", "release"):
        client.groups.create(name)
    sent.clear()

    assert [g.name for g in client.groups.iter_all(page_size=2)] == ["data", "ops", "release"]
    assert len(sent) == 2
    client.groups.delete("ops")
    assert [g.name for g in client.groups.list().items] == ["data", "release"]
    with pytest.raises(ketch.NotFound, match="group 'ops' does not exist"):
        client.groups.get("ops")
    with pytest.raises(ketch.InvalidInput, match="group name 'Bad Name' is invalid"):
        client.groups.create("Bad Name")


# -- tokens --------------------------------------------------------------------------


def test_a_new_token_works_and_its_secret_is_never_listed(
    client: ketch.Client, http: TestClient
) -> None:
    issued = client.tokens.create(name="ci", ttl_days=7)

    assert issued.token.startswith(f"ketch_{issued.prefix}_")
    assert (issued.principal.name, issued.read_only, issued.account_ids) == ("admin", False, None)
    other = ketch.Client(url=f"http://{TEST_HOST}", token=issued.token, http_client=http)
    assert other.whoami().token_id == issued.token_id

    listed = {t.id: t for t in client.tokens.iter_all()}
    assert listed[issued.token_id].name == "ci"
    assert listed[issued.token_id].user == "admin"
    # The secret part is URL-safe base64, which has underscores of its own.
    secret = issued.token.removeprefix(f"ketch_{issued.prefix}_")
    assert len(secret) >= 32
    assert secret not in client.request("GET", "/api/v1/tokens").text  # not even unparsed


def test_read_only_and_account_limited_tokens(client: ketch.Client, http: TestClient) -> None:
    client.accounts.create("fraud-dev", stage="dev")
    read_only = client.tokens.create(name="audit", read_only=True)
    limited = client.tokens.create(name="fraud", account_ids=["fraud-dev"])
    assert read_only.read_only is True
    assert limited.account_ids == ["fraud-dev"]

    reader = ketch.Client(url=f"http://{TEST_HOST}", token=read_only.token, http_client=http)
    assert [a.id for a in reader.accounts.list().items] == ["fraud-dev"]
    with pytest.raises(ketch.Forbidden):
        reader.users.create("mallory", password=PASSWORD)
    with pytest.raises(ketch.NotFound):
        client.users.get("mallory")
    with pytest.raises(ketch.InvalidInput, match="no such account: nope-acct"):
        client.tokens.create(account_ids=["nope-acct"])


def test_revoke_stops_a_token_at_once(client: ketch.Client, http: TestClient) -> None:
    issued = client.tokens.create(name="short-lived")
    other = ketch.Client(url=f"http://{TEST_HOST}", token=issued.token, http_client=http)
    other.whoami()

    revoked = client.tokens.revoke(issued.token_id)

    assert revoked.revoked_at is not None
    with pytest.raises(ketch.Unauthenticated):
        other.whoami()
    assert client.tokens.revoke(issued.token_id).revoked_at == revoked.revoked_at
    with pytest.raises(ketch.NotFound, match="token 'no-such-token' does not exist"):
        client.tokens.revoke("no-such-token")


def test_other_users_tokens_need_admin_rights(
    client: ketch.Client, sign_in: Callable[..., ketch.Client]
) -> None:
    client.users.create("alice", password=PASSWORD)
    client.users.create("bob", password=PASSWORD)
    alice = sign_in("alice")
    alice_ci = alice.tokens.create(name="alice-ci")

    assert {t.name for t in alice.tokens.list().items} >= {"alice-ci"}
    assert alice_ci.token_id in {t.id for t in client.tokens.list(user="alice").items}
    assert all(t.user == "alice" for t in client.tokens.iter_all(user="alice"))
    with pytest.raises(ketch.Forbidden):
        alice.tokens.list(user="admin")
    with pytest.raises(ketch.Forbidden):
        sign_in("bob").tokens.revoke(alice_ci.token_id)
    assert client.tokens.revoke(alice_ci.token_id).revoked_at is not None
