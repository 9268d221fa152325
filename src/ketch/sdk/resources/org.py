"""``client.ous`` and ``client.accounts``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ketch.core.errors import NotFound
from ketch.schemas.common import Page
from ketch.schemas.org import (
    OU,
    Account,
    AccountCreate,
    AccountStatus,
    AccountUpdate,
    OUCreate,
    OUUpdate,
    Stage,
)
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, choice

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"


class OrganizationalUnits:
    """The OU tree. OUs are addressed by id in the API and by path (``teams/fraud``) here."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        name: str,
        *,
        parent: str = "",
        create_missing_parents: bool = False,
        client_token: str | None = None,
    ) -> OU:
        body = build(
            OUCreate,
            name=name,
            parent=parent,
            create_missing_parents=create_missing_parents,
            client_token=client_token,
        )
        response = self._client.request(
            "POST",
            f"{PREFIX}/ous",
            json=body.model_dump(exclude_none=True),
            retry=client_token is not None,
        )
        return OU.model_validate(response.json())

    def get(self, ou_id: str) -> OU:
        return OU.model_validate(self._client.request("GET", f"{PREFIX}/ous/{ou_id}").json())

    def get_by_path(self, path: str) -> OU:
        """The OU at ``path`` (``""`` is the root)."""
        page = self.list(path=path.strip("/"))
        if not page.items:
            raise NotFound(f"OU '{path}' does not exist")
        return page.items[0]

    def list(
        self,
        *,
        parent: str | None = None,
        path: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[OU]:
        params = {
            "parent": parent,
            "path": path,
            "max_results": max_results,
            "next_token": next_token,
        }
        response = self._client.request("GET", f"{PREFIX}/ous", params=params)
        return Page[OU].model_validate(response.json())

    def iter_all(self, *, parent: str | None = None, page_size: int | None = None) -> Iterator[OU]:
        """Every OU (or every child of ``parent``), fetching ``page_size`` per request."""
        return iterate(
            lambda token: self.list(parent=parent, max_results=page_size, next_token=token)
        )

    def update(self, ou_id: str, *, name: str | None = None, parent: str | None = None) -> OU:
        body = build(OUUpdate, name=name, parent=parent).model_dump(exclude_none=True)
        response = self._client.request("PATCH", f"{PREFIX}/ous/{ou_id}", json=body)
        return OU.model_validate(response.json())

    def delete(self, ou_id: str) -> None:
        self._client.request("DELETE", f"{PREFIX}/ous/{ou_id}")


class Accounts:
    """Accounts: the isolation boundary of every team and stage."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        account_id: str,
        *,
        stage: Stage | str,
        ou: str = "",
        display_name: str | None = None,
        tags: dict[str, str] | None = None,
        create_missing_ous: bool = False,
        client_token: str | None = None,
    ) -> Account:
        body = build(
            AccountCreate,
            id=account_id,
            stage=choice(Stage, stage, field="stage"),
            ou=ou,
            display_name=display_name,
            tags=tags or {},
            create_missing_ous=create_missing_ous,
            client_token=client_token,
        )
        response = self._client.request(
            "POST",
            f"{PREFIX}/accounts",
            json=body.model_dump(mode="json", exclude_none=True),
            retry=client_token is not None,
        )
        return Account.model_validate(response.json())

    def get(self, account_id: str) -> Account:
        response = self._client.request("GET", f"{PREFIX}/accounts/{account_id}")
        return Account.model_validate(response.json())

    def list(
        self,
        *,
        ou: str | None = None,
        stage: Stage | str | None = None,
        status: AccountStatus | str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[Account]:
        params = {
            "ou": ou,
            "stage": choice(Stage, stage, field="stage").value if stage is not None else None,
            "status": (
                choice(AccountStatus, status, field="status").value if status is not None else None
            ),
            "max_results": max_results,
            "next_token": next_token,
        }
        response = self._client.request("GET", f"{PREFIX}/accounts", params=params)
        return Page[Account].model_validate(response.json())

    def iter_all(
        self,
        *,
        ou: str | None = None,
        stage: Stage | str | None = None,
        status: AccountStatus | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Account]:
        """Every matching account, fetching ``page_size`` per request."""
        return iterate(
            lambda token: self.list(
                ou=ou, stage=stage, status=status, max_results=page_size, next_token=token
            )
        )

    def update(
        self,
        account_id: str,
        *,
        display_name: str | None = None,
        stage: Stage | str | None = None,
        tags: dict[str, str] | None = None,
        ou: str | None = None,
    ) -> Account:
        body = build(
            AccountUpdate,
            display_name=display_name,
            stage=choice(Stage, stage, field="stage") if stage is not None else None,
            tags=tags,
            ou=ou,
        )
        response = self._client.request(
            "PATCH",
            f"{PREFIX}/accounts/{account_id}",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return Account.model_validate(response.json())

    def move(self, account_id: str, *, ou: str) -> Account:
        return self.update(account_id, ou=ou)

    def close(self, account_id: str) -> Account:
        response = self._client.request("POST", f"{PREFIX}/accounts/{account_id}/close")
        return Account.model_validate(response.json())
