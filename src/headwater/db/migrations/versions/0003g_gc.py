"""Pending blobs: storage objects an upload is writing, which the garbage collector must keep.

Revision ID: 0003g
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003g"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_blobs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("storage_key", sa.String(1000), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_blobs"),
    )
    op.create_index("ix_pending_blobs_index_storage_key", "pending_blobs", ["index", "storage_key"])
    # The collector's re-check asks whether any file of the index refers to a key.
    op.create_index("ix_files_index_storage_key", "files", ["index", "storage_key"])


def downgrade() -> None:
    op.drop_index("ix_files_index_storage_key", table_name="files")
    op.drop_index("ix_pending_blobs_index_storage_key", table_name="pending_blobs")
    op.drop_table("pending_blobs")
