"""Table of the idempotency service: which client token created which resource."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ketch.store.base import Base, UtcDateTime


class ClientTokenRow(Base):
    __tablename__ = "client_tokens"
    __table_args__ = (UniqueConstraint("principal_id", "operation", "token"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
