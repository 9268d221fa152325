"""Tables of the org service (private to it): organisation, OUs, accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ketch.store.base import Base, Timestamped, UtcDateTime


class OrganizationRow(Timestamped, Base):
    __tablename__ = "organizations"
    __table_args__ = (CheckConstraint("slot = 1", name="single_org"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # A constant unique column: a second organisation cannot be inserted, even by a race.
    slot: Mapped[int] = mapped_column(Integer, unique=True, default=1)
    name: Mapped[str] = mapped_column(String(63))
    # Grows with every change to OUs and accounts; see ``service.revision``.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class OURow(Timestamped, Base):
    __tablename__ = "ous"
    __table_args__ = (UniqueConstraint("parent_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("ous.id", ondelete="RESTRICT"), index=True
    )


class AccountRow(Timestamped, Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ou_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("ous.id", ondelete="RESTRICT"), index=True
    )
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
