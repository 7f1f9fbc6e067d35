"""The administration pages' audit log.

Revision ID: 0006
Revises: 0003g
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003g"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("index", sa.String(100), nullable=True),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("via", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_audit"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_admin_audit_time", "admin_audit", ["time"])


def downgrade() -> None:
    op.drop_index("ix_admin_audit_time", table_name="admin_audit")
    op.drop_table("admin_audit")
