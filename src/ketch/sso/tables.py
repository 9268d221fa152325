"""Tables of the sso service: sign-ins in progress and one-time CLI exchange codes.

Both are short-lived and single use: a row is deleted when it is used, and expired rows
are purged whenever new ones are written. Lookup keys (the ``state`` and the exchange
code) are stored only as SHA-256 digests; the PKCE code verifier and the nonce are
stored as they are, since the token request needs them back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ketch.store.base import Base, UtcDateTime


class PendingLoginRow(Base):
    __tablename__ = "sso_pending_logins"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    cli_redirect: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class ExchangeCodeRow(Base):
    __tablename__ = "sso_exchange_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
