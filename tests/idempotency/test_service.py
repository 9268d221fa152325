"""Client tokens: the same token and body find the same resource; another body is a Conflict.

Runs on SQLite and PostgreSQL (the ``uow`` fixture). The end-to-end test composes the
service with org.create_account the way an idempotent create does: recall, else create
and remember, all in one unit of work.
"""

from __future__ import annotations

from typing import Any

import pytest

from ketch import idempotency, org
from ketch.core.errors import Conflict
from ketch.schemas.org import Account, AccountCreate, Stage
from ketch.store.session import UnitOfWorkFactory

ALICE = "a" * 32
BOB = "b" * 32
OP = "CreateAccount"


def _key(
    *, principal: str = ALICE, operation: str = OP, token: str = "tok-1", request_hash: str = "h1"
) -> dict[str, str]:
    """The arguments naming one request: who, which operation, which token, which body."""
    return {
        "principal_id": principal,
        "operation": operation,
        "token": token,
        "request_hash": request_hash,
    }


def _remember(uow: UnitOfWorkFactory, *, resource_id: str = "r1", **key: str) -> None:
    with uow(write=True) as u:
        idempotency.remember(u, resource_id=resource_id, **_key(**key))


def _recall(uow: UnitOfWorkFactory, **key: str) -> str | None:
    with uow() as u:
        return idempotency.recall(u, **_key(**key))


# -- fingerprint ----------------------------------------------------------------------


def test_fingerprint_ignores_key_order_and_the_token() -> None:
    body: dict[str, Any] = {"id": "fraud-dev", "stage": "dev", "tags": {"a": "1", "b": "2"}}
    same = {"tags": {"b": "2", "a": "1"}, "stage": "dev", "id": "fraud-dev"}
    assert idempotency.fingerprint(body) == idempotency.fingerprint(same)
    assert idempotency.fingerprint(body) == idempotency.fingerprint(
        {**body, "client_token": "tok-1"}
    )
    assert idempotency.fingerprint({**body, "client_token": "x"}) == idempotency.fingerprint(
        {**body, "client_token": "y"}
    )
    digest = idempotency.fingerprint(body)
    assert len(digest) == 64 and int(digest, 16) >= 0  # fits request_hash String(64)


@pytest.mark.parametrize(
    "other",
    [
        {"id": "fraud-prd", "stage": "dev", "tags": {}},
        {"id": "fraud-dev", "stage": "prod", "tags": {}},
        {"id": "fraud-dev", "stage": "dev", "tags": {"a": "1"}},
        {"id": "fraud-dev", "stage": "dev"},
        {"id": "fraud-dev", "stage": "dev", "tags": {}, "ou": ""},
        {"id": "fraud-dev", "stage": "dev", "tags": None},
    ],
)
def test_fingerprint_changes_with_the_body(other: dict[str, Any]) -> None:
    body = {"id": "fraud-dev", "stage": "dev", "tags": {}}
    assert idempotency.fingerprint(body) != idempotency.fingerprint(other)


def test_fingerprint_of_a_wire_model_is_stable() -> None:
    first = AccountCreate(id="fraud-dev", stage=Stage.DEV, tags={"a": "1"}, client_token="t1")
    second = AccountCreate(id="fraud-dev", stage=Stage.DEV, tags={"a": "1"}, client_token="t2")
    assert idempotency.fingerprint(first.model_dump(mode="json")) == idempotency.fingerprint(
        second.model_dump(mode="json")
    )


# -- recall and remember --------------------------------------------------------------


def test_same_token_and_body_recall_the_resource(uow: UnitOfWorkFactory) -> None:
    assert _recall(uow) is None  # an unknown token is a new request
    _remember(uow, resource_id="fraud-dev")
    assert _recall(uow) == "fraud-dev"
    assert _recall(uow) == "fraud-dev"  # recalling does not consume the token


def test_same_token_with_another_body_is_a_conflict(uow: UnitOfWorkFactory) -> None:
    _remember(uow, request_hash="h1")
    with pytest.raises(Conflict, match=r"client_token 'tok-1'.*different CreateAccount"):
        _recall(uow, request_hash="h2")
    assert _recall(uow, request_hash="h1") == "r1"


def test_tokens_are_scoped_to_principal_and_operation(uow: UnitOfWorkFactory) -> None:
    _remember(uow, principal=ALICE, operation=OP, resource_id="r-alice")
    assert _recall(uow, principal=BOB) is None
    assert _recall(uow, principal=BOB, request_hash="other") is None
    assert _recall(uow, operation="CreateOU") is None
    assert _recall(uow, token="tok-2") is None
    # The same token may be used independently by someone else or for another operation.
    _remember(uow, principal=BOB, resource_id="r-bob", request_hash="hb")
    _remember(uow, operation="CreateOU", resource_id="r-ou", request_hash="ho")
    assert _recall(uow) == "r-alice"
    assert _recall(uow, principal=BOB, request_hash="hb") == "r-bob"
    assert _recall(uow, operation="CreateOU", request_hash="ho") == "r-ou"


def test_a_token_is_remembered_once(uow: UnitOfWorkFactory) -> None:
    """A second remember of the same token (a racing retry) is a Conflict, not a database
    error, and leaves the first record alone."""
    _remember(uow, resource_id="r1")
    with pytest.raises(Conflict, match="client_token 'tok-1'"):
        _remember(uow, resource_id="r2")
    with pytest.raises(Conflict, match="client_token 'tok-1'"):
        _remember(uow, resource_id="r1", request_hash="h2")
    assert _recall(uow) == "r1"


def test_token_is_not_kept_when_the_unit_of_work_fails(uow: UnitOfWorkFactory) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), uow(write=True) as u:
        idempotency.remember(u, resource_id="r1", **_key())
        raise Boom
    assert _recall(uow) is None


def test_longest_token_fits(uow: UnitOfWorkFactory) -> None:
    token = "t" * 128  # the wire limit of client_token
    _remember(uow, token=token, request_hash="f" * 64, resource_id="x" * 128)
    assert _recall(uow, token=token, request_hash="f" * 64) == "x" * 128


# -- with a real create ---------------------------------------------------------------


def _create_account_once(uow: UnitOfWorkFactory, data: AccountCreate) -> Account:
    assert data.client_token is not None
    key = _key(
        token=data.client_token, request_hash=idempotency.fingerprint(data.model_dump(mode="json"))
    )
    with uow(write=True) as u:
        existing = idempotency.recall(u, **key)
        if existing is not None:
            return org.get_account(u, existing)
        account = org.create_account(u, data)
        idempotency.remember(u, resource_id=account.id, **key)
        return account


def _account_ids(uow: UnitOfWorkFactory) -> list[str]:
    with uow() as u:
        accounts, _ = org.list_accounts(u, limit=100)
    return [a.id for a in accounts]


def test_retried_create_returns_the_same_account(uow: UnitOfWorkFactory) -> None:
    data = AccountCreate(
        id="fraud-dev", stage=Stage.DEV, ou="teams", create_missing_ous=True, client_token="tok-1"
    )
    first = _create_account_once(uow, data)
    again = _create_account_once(uow, data.model_copy())
    assert again == first
    assert _account_ids(uow) == ["fraud-dev"]

    changed = data.model_copy(update={"stage": Stage.PROD})
    with pytest.raises(Conflict, match="client_token"):
        _create_account_once(uow, changed)
    new_token = data.model_copy(update={"client_token": "tok-2"})
    with pytest.raises(Conflict, match="'fraud-dev' already exists"):
        _create_account_once(uow, new_token)
    with uow() as u:
        assert org.get_account(u, "fraud-dev") == first


def test_failed_create_leaves_the_token_free(uow: UnitOfWorkFactory) -> None:
    missing_ou = AccountCreate(id="fraud-dev", stage=Stage.DEV, ou="teams", client_token="tok-1")
    with pytest.raises(Exception, match="create_missing_ous"):
        _create_account_once(uow, missing_ou)
    assert _recall(uow, token="tok-1") is None
    fixed = missing_ou.model_copy(update={"create_missing_ous": True})
    assert _create_account_once(uow, fixed).ou_path == "teams"
    assert _account_ids(uow) == ["fraud-dev"]
