"""Tables of the iam service (private to it).

Identity: users, groups and memberships, API tokens, sign-in throttling.
Access: permission sets, assignments, guardrails, the network policy, and the policy
epoch, a counter bumped by every change that can alter a decision, so that every
server process rebuilds its cached Cedar handles on the very next request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ketch.store.base import Base, Timestamped, UtcDateTime


class UserRow(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("external_issuer", "external_subject", name="uq_users_external_identity"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # "local" (password) or "sso" (just-in-time from the identity provider)
    source: Mapped[str] = mapped_column(String(16), default="local")
    external_issuer: Mapped[str | None] = mapped_column(String(512), nullable=True)
    external_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)


class GroupRow(Timestamped, Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")


class GroupMemberRow(Base):
    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # "local" (added by an admin) or "sso" (from the provider's group claim, resynced at sign-in)
    source: Mapped[str] = mapped_column(String(16), default="local")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: every account the user may reach; a list: only these account ids
    account_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class LoginThrottleRow(Base):
    """Failed sign-ins per user name (known or not, so both look the same)."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UtcDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PermissionSetRow(Timestamped, Base):
    __tablename__ = "permission_sets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    policy_text: Mapped[str] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: from anywhere the organisation allows; a list: also only from these ranges
    allowed_cidrs: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class AssignmentRow(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint(
            "permission_set_id",
            "principal_type",
            "principal_id",
            "target_type",
            "target_id",
            name="uq_assignments_grant",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    permission_set_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("permission_sets.id", ondelete="RESTRICT"), index=True
    )
    principal_type: Mapped[str] = mapped_column(String(8))  # "user" | "group"
    principal_id: Mapped[str] = mapped_column(String(32), index=True)
    target_type: Mapped[str] = mapped_column(String(8))  # "account" | "ou"
    target_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(63), nullable=True)


class GuardrailRow(Timestamped, Base):
    __tablename__ = "guardrails"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    policy_text: Mapped[str] = mapped_column(Text)
    ou_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("ous.id", ondelete="RESTRICT"), index=True
    )


class IamSettingsRow(Base):
    """Organisation-wide access settings (one row): network allow-list and policy epoch."""

    __tablename__ = "iam_settings"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    allowed_cidrs: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    policy_epoch: Mapped[int] = mapped_column(Integer, default=0)
