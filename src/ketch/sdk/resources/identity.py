"""``client.users``, ``client.groups`` and ``client.tokens``: who may sign in, and how."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ketch.schemas.common import Page
from ketch.schemas.iam import (
    Group,
    GroupCreate,
    GroupMemberAdd,
    Token,
    TokenCreate,
    TokenIssued,
    User,
    UserCreate,
    UserUpdate,
)
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, segment

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"


class Users:
    """Local users (with a password) and users created by single sign-on."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, name: str, *, password: str, display_name: str = "", email: str | None = None
    ) -> User:
        """A local user; the server refuses a weak password and says what a strong one is."""
        body = build(
            UserCreate, name=name, password=password, display_name=display_name, email=email
        )
        response = self._client.request(
            "POST", f"{PREFIX}/users", json=body.model_dump(exclude_none=True)
        )
        return User.model_validate(response.json())

    def get(self, name: str) -> User:
        response = self._client.request("GET", f"{PREFIX}/users/{segment(name, field='name')}")
        return User.model_validate(response.json())

    def list(self, *, max_results: int | None = None, next_token: str | None = None) -> Page[User]:
        params = {"max_results": max_results, "next_token": next_token}
        response = self._client.request("GET", f"{PREFIX}/users", params=params)
        return Page[User].model_validate(response.json())

    def iter_all(self, *, page_size: int | None = None) -> Iterator[User]:
        """Every user, by name, fetching ``page_size`` per request."""
        return iterate(lambda token: self.list(max_results=page_size, next_token=token))

    def update(
        self,
        name: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change what is given; ``disabled=True`` refuses the user's sign-ins and tokens."""
        body = build(
            UserUpdate, display_name=display_name, email=email, disabled=disabled, password=password
        )
        response = self._client.request(
            "PATCH",
            f"{PREFIX}/users/{segment(name, field='name')}",
            json=body.model_dump(exclude_none=True),
        )
        return User.model_validate(response.json())

    def delete(self, name: str) -> None:
        """Delete the user, its group memberships and its assignments."""
        self._client.request("DELETE", f"{PREFIX}/users/{segment(name, field='name')}")


class Groups:
    """Groups of users; assignments to a group apply to every member."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, name: str, *, description: str = "") -> Group:
        body = build(GroupCreate, name=name, description=description)
        response = self._client.request("POST", f"{PREFIX}/groups", json=body.model_dump())
        return Group.model_validate(response.json())

    def get(self, name: str) -> Group:
        response = self._client.request("GET", f"{PREFIX}/groups/{segment(name, field='name')}")
        return Group.model_validate(response.json())

    def list(self, *, max_results: int | None = None, next_token: str | None = None) -> Page[Group]:
        params = {"max_results": max_results, "next_token": next_token}
        response = self._client.request("GET", f"{PREFIX}/groups", params=params)
        return Page[Group].model_validate(response.json())

    def iter_all(self, *, page_size: int | None = None) -> Iterator[Group]:
        """Every group, by name, fetching ``page_size`` per request."""
        return iterate(lambda token: self.list(max_results=page_size, next_token=token))

    def delete(self, name: str) -> None:
        """Delete the group and its assignments (its members stay)."""
        self._client.request("DELETE", f"{PREFIX}/groups/{segment(name, field='name')}")

    def add_member(self, group: str, user: str) -> Group:
        """Add ``user`` to ``group``; adding a member again changes nothing."""
        body = build(GroupMemberAdd, user=user)
        response = self._client.request(
            "POST",
            f"{PREFIX}/groups/{segment(group, field='group')}/members",
            json=body.model_dump(),
        )
        return Group.model_validate(response.json())

    def remove_member(self, group: str, user: str) -> Group:
        path = f"{segment(group, field='group')}/members/{segment(user, field='user')}"
        response = self._client.request("DELETE", f"{PREFIX}/groups/{path}")
        return Group.model_validate(response.json())


class Tokens:
    """API tokens: the caller's own, or (for an admin) another user's with ``user=``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        name: str = "cli",
        ttl_days: int = 30,
        read_only: bool = False,
        account_ids: list[str] | None = None,
    ) -> TokenIssued:
        """A new token for the caller. ``issued.token`` is the secret: shown this once.

        ``read_only`` tokens may only describe and list; ``account_ids`` limits the token
        to those accounts (``None``: wherever the caller may act).
        """
        body = build(
            TokenCreate,
            name=name,
            ttl_days=ttl_days,
            read_only=read_only,
            account_ids=account_ids,
        )
        response = self._client.request(
            "POST", f"{PREFIX}/tokens", json=body.model_dump(exclude_none=True)
        )
        return TokenIssued.model_validate(response.json())

    def list(
        self,
        *,
        user: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[Token]:
        """The tokens of the caller, or of ``user`` (which needs admin rights); no secrets."""
        params = {"user": user, "max_results": max_results, "next_token": next_token}
        response = self._client.request("GET", f"{PREFIX}/tokens", params=params)
        return Page[Token].model_validate(response.json())

    def iter_all(self, *, user: str | None = None, page_size: int | None = None) -> Iterator[Token]:
        return iterate(lambda token: self.list(user=user, max_results=page_size, next_token=token))

    def revoke(self, token_id: str) -> Token:
        """Revoke a token at once; revoking it again changes nothing."""
        path = f"{PREFIX}/tokens/{segment(token_id, field='token_id')}/revoke"
        return Token.model_validate(self._client.request("POST", path).json())
