"""Access control: users, API tokens (hashed), project owners, PEP 752 namespace grants.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("indexes", sa.JSON, nullable=True),
        sa.Column("projects", sa.JSON, nullable=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=True),
        sa.Column("revoked", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(
            ["user"], ["users.name"], name="fk_tokens_user_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_tokens_user", "tokens", ["user"])
    op.create_table(
        "owners",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "user", name="pk_owners"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_owners_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user"], ["users.name"], name="fk_owners_user_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "namespaces",
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("open", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("index", "name", name="pk_namespaces"),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.name"], name="fk_namespaces_owner_users", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("namespaces")
    op.drop_table("owners")
    op.drop_index("ix_tokens_user", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("users")
