"""Single sign-on: sign-ins in progress and one-time CLI exchange codes, in the database
so that any server process can finish a sign-in another one started.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ketch.store.base import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_pending_logins",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("cli_redirect", sa.String(512), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_pending_logins")),
    )
    op.create_index(op.f("ix_sso_pending_logins_expires_at"), "sso_pending_logins", ["expires_at"])
    op.create_table(
        "sso_exchange_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(63), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_sso_exchange_codes")),
    )
    op.create_index(op.f("ix_sso_exchange_codes_expires_at"), "sso_exchange_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sso_exchange_codes_expires_at"), table_name="sso_exchange_codes")
    op.drop_table("sso_exchange_codes")
    op.drop_index(op.f("ix_sso_pending_logins_expires_at"), table_name="sso_pending_logins")
    op.drop_table("sso_pending_logins")
