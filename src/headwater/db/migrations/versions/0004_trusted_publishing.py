"""Trusted publishing: publishers, minted tokens, used OIDC token ids, the publishing log.

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publishers",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=True),
        sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("identity", sa.JSON, nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("added_by", sa.String(100), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_publishers"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_publishers_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.name"], name="fk_publishers_owner_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_publishers_project_id", "publishers", ["project_id"])
    op.create_index("ix_publishers_index_project", "publishers", ["index", "project"])
    op.create_table(
        "minted_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("grants", sa.JSON, nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("claims", sa.JSON, nullable=False),
        sa.Column("single_use", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=False),
        sa.Column("used", _TIME, nullable=True),
        sa.Column("revoked", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_minted_tokens"),
    )
    op.create_index("ix_minted_tokens_created", "minted_tokens", ["created"])
    op.create_table(
        "oidc_jtis",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("expires", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_oidc_jtis"),
    )
    op.create_index("ix_oidc_jtis_expires", "oidc_jtis", ["expires"])
    op.create_table(
        "publishing_log",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("publisher_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_publishing_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_publishing_log_token_id", "publishing_log", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_publishing_log_token_id", table_name="publishing_log")
    op.drop_table("publishing_log")
    op.drop_index("ix_oidc_jtis_expires", table_name="oidc_jtis")
    op.drop_table("oidc_jtis")
    op.drop_index("ix_minted_tokens_created", table_name="minted_tokens")
    op.drop_table("minted_tokens")
    op.drop_index("ix_publishers_index_project", table_name="publishers")
    op.drop_index("ix_publishers_project_id", table_name="publishers")
    op.drop_table("publishers")
