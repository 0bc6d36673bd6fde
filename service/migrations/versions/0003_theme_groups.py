"""theme groups: the broader subjects over a job's themes; ``reporting.theme_groups`` on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('theme_groups',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'group_id')
    )
    if op.get_bind().dialect.name == "postgresql":
        create_reporting_table()


# Literal here so that this migration never changes with later code (docs/bi.md).
REPORTING_COLUMNS = ("group_id integer, level integer, label text, keywords text, size integer, share double precision, "
                     "sentiment_mean double precision, negative double precision, neutral double precision, "
                     "positive double precision, rating_mean double precision, rating_count integer, theme_ids text")


def create_reporting_table() -> None:
    """``reporting.theme_groups`` as 0002 made the other reporting tables (row-level security per tenant), readable
    by the roles already granted (``feedback-themes reporting grant``)."""
    op.execute(f"CREATE TABLE reporting.theme_groups (tenant_id text NOT NULL, project_id text NOT NULL, "
               f"{REPORTING_COLUMNS})")
    op.execute("CREATE INDEX ix_reporting_theme_groups_project ON reporting.theme_groups (tenant_id, project_id)")
    op.execute("ALTER TABLE reporting.theme_groups ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_rows ON reporting.theme_groups FOR SELECT USING (tenant_id IN "
               "(SELECT m.tenant_id FROM reporting.role_tenants m WHERE m.role_name = current_user))")
    op.execute("COMMENT ON TABLE reporting.theme_groups IS 'feedback-themes reporting schema version 1 (docs/bi.md)'")
    op.execute("""DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT role_name FROM reporting.role_tenants LOOP
            EXECUTE format('GRANT SELECT ON reporting.theme_groups TO %I', r.role_name);
        END LOOP; END $$""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS reporting.theme_groups")
    op.drop_table('theme_groups')
