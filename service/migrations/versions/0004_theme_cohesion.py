"""theme cohesion: a ``cohesion`` column on ``reporting.themes`` and ``reporting.theme_groups`` (PostgreSQL)

The job tables keep each theme's whole record as JSON, so only the reporting tables gain a column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 14:10:00
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ("reporting.themes", "reporting.theme_groups")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS cohesion double precision")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS cohesion")
