"""group kind: a ``kind`` column on ``reporting.theme_groups`` (PostgreSQL)

Theme groups are of three kinds: ``union`` (themes whose features point the same way), ``broader`` (a theme of a
half-size SAE) and ``sub_theme`` (a theme of a double-size SAE, ``level`` 1). The job tables keep each group's whole
record as JSON, so only the reporting table gains a column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 15:20:00
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reporting.theme_groups ADD COLUMN IF NOT EXISTS kind text")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reporting.theme_groups DROP COLUMN IF EXISTS kind")
