"""Organisation, OUs, accounts, users, API tokens and client tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ketch.store.base import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("slot = 1", name=op.f("ck_organizations_single_org")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slot", name=op.f("uq_organizations_slot")),
    )
    op.create_table(
        "ous",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["ous.id"], name=op.f("fk_ous_parent_id_ous"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ous")),
        sa.UniqueConstraint("parent_id", "name", name=op.f("uq_ous_parent_id_name")),
    )
    op.create_index(op.f("ix_ous_parent_id"), "ous", ["parent_id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("ou_id", sa.String(32), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["ou_id"], ["ous.id"], name=op.f("fk_accounts_ou_id_ous"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_ou_id"), "accounts", ["ou_id"])
    op.create_index(op.f("ix_accounts_stage"), "accounts", ["stage"])
    op.create_index(op.f("ix_accounts_status"), "accounts", ["status"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_org_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_tokens_prefix")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "client_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_tokens")),
        sa.UniqueConstraint(
            "principal_id",
            "operation",
            "token",
            name=op.f("uq_client_tokens_principal_id_operation_token"),
        ),
    )


def downgrade() -> None:
    for table in ("client_tokens", "api_tokens", "users", "accounts", "ous", "organizations"):
        op.drop_table(table)
