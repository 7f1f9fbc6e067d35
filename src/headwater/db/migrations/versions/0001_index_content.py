"""Index content: projects, files, deleted filenames and the journal of serials.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("time", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("serial", name="pk_journal"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_journal_index_serial", "journal", ["index", "serial"])
    op.create_index("ix_journal_index_project_serial", "journal", ["index", "project", "serial"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("alternate_locations", sa.JSON, nullable=False),
        sa.Column("tracks", sa.JSON, nullable=False),
        sa.Column("last_serial", sa.Integer, nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("index", "name", name="uq_projects_index_name"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blake2_256", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("upload_time", _TIME, nullable=False),
        sa.Column("requires_python", sa.Text, nullable=True),
        sa.Column("metadata_sha256", sa.String(64), nullable=True),
        sa.Column("yanked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("yanked_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("storage_key", sa.String(1000), nullable=False),
        sa.Column("uploader", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_files_project_id_projects", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("index", "filename", name="uq_files_index_filename"),
    )
    op.create_index("ix_files_project_id", "files", ["project_id"])
    op.create_table(
        "deleted_files",
        sa.Column("index", sa.String(100), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("index", "filename", name="pk_deleted_files"),
    )


def downgrade() -> None:
    op.drop_table("deleted_files")
    op.drop_index("ix_files_project_id", table_name="files")
    op.drop_table("files")
    op.drop_table("projects")
    op.drop_index("ix_journal_index_project_serial", table_name="journal")
    op.drop_index("ix_journal_index_serial", table_name="journal")
    op.drop_table("journal")
