"""PEP 740 provenance: each file's provenance document digest and its verified publishers.

Revision ID: 0005
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive: files uploaded before have no provenance (NULL), as before.
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("provenance_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("publishers", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("publishers")
        batch.drop_column("provenance_sha256")
