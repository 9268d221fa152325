"""Identity and access: groups, memberships, token scopes, sign-in throttling, permission
sets, assignments, guardrails, organisation access settings. Users lose ``is_org_admin``
(organisation admins are now an OrgAdmin assignment on the root OU) and gain SSO fields.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ketch.store.base import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_org_admin")
        batch.add_column(
            sa.Column("display_name", sa.String(128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="local"))
        batch.add_column(sa.Column("external_issuer", sa.String(512), nullable=True))
        batch.add_column(sa.Column("external_subject", sa.String(255), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_users_external_identity"), ["external_issuer", "external_subject"]
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("display_name", server_default=None)
        batch.alter_column("source", server_default=None)
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("account_ids", sa.JSON(), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("read_only", server_default=None)

    op.create_table(
        "groups",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.String(512), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_user_id"), "group_members", ["user_id"])
    op.create_table(
        "login_throttle",
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UtcDateTime(), nullable=False),
        sa.Column("blocked_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_throttle")),
    )
    op.create_table(
        "permission_sets",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.String(512), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("allowed_cidrs", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_permission_sets_name")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("permission_set_id", sa.String(32), nullable=False),
        sa.Column("principal_type", sa.String(8), nullable=False),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("target_type", sa.String(8), nullable=False),
        sa.Column("target_id", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(63), nullable=True),
        sa.ForeignKeyConstraint(
            ["permission_set_id"],
            ["permission_sets.id"],
            name=op.f("fk_assignments_permission_set_id_permission_sets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint(
            "permission_set_id",
            "principal_type",
            "principal_id",
            "target_type",
            "target_id",
            name=op.f("uq_assignments_grant"),
        ),
    )
    for column in ("permission_set_id", "principal_id", "target_id"):
        op.create_index(op.f(f"ix_assignments_{column}"), "assignments", [column])
    op.create_table(
        "guardrails",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.String(512), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("ou_id", sa.String(32), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["ou_id"], ["ous.id"], name=op.f("fk_guardrails_ou_id_ous"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardrails")),
        sa.UniqueConstraint("name", name=op.f("uq_guardrails_name")),
    )
    op.create_index(op.f("ix_guardrails_ou_id"), "guardrails", ["ou_id"])
    op.create_table(
        "iam_settings",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("allowed_cidrs", sa.JSON(), nullable=True),
        sa.Column("policy_epoch", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_iam_settings")),
    )


def downgrade() -> None:
    for table in (
        "iam_settings",
        "guardrails",
        "assignments",
        "permission_sets",
        "login_throttle",
        "group_members",
        "groups",
    ):
        op.drop_table(table)
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("account_ids")
        batch.drop_column("read_only")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_external_identity"), type_="unique")
        for column in ("external_subject", "external_issuer", "source", "email", "display_name"):
            batch.drop_column(column)
        batch.add_column(
            sa.Column("is_org_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
