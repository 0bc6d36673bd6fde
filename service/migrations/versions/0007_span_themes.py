"""span themes: the spans (sentences) of comments that carry each theme; reporting schema version 2 (PostgreSQL)

``span_themes`` holds, per job, each span that carries a theme: its comment (``document_id``), its index in the
comment, its character offsets ``[span_start, span_end)`` in the comment's text and its activation. On PostgreSQL,
``reporting.span_themes`` publishes it (row-level security per tenant, as 0002 made the other reporting tables,
readable by the roles already granted), and ``reporting.themes`` and ``reporting.theme_groups`` gain ``span_count``
(how many spans carry the theme). Jobs finished before this migration have no span rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# Literal here so that this migration never changes with later code (docs/bi.md).
REPORTING_COLUMNS = ('doc_id text, span_index integer, span_start integer, span_end integer, theme_id integer, '
                     'activation double precision')
SPAN_COUNT_TABLES = ("reporting.themes", "reporting.theme_groups")
COMMENT = "feedback-themes reporting schema version 2 (docs/bi.md)"
REPORTING_TABLES = ("projects", "themes", "document_themes", "documents", "theme_trends", "theme_impact",
                    "theme_groups")  # fmt: skip


def upgrade() -> None:
    op.create_table('span_themes',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('span_index', sa.Integer(), nullable=False),
    sa.Column('span_start', sa.Integer(), nullable=False),
    sa.Column('span_end', sa.Integer(), nullable=False),
    sa.Column('activation', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'theme_id', 'document_id', 'span_index')
    )
    with op.batch_alter_table('span_themes', schema=None) as batch_op:
        batch_op.create_index('ix_span_themes_job_theme', ['job_id', 'theme_id', 'activation'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        create_reporting_table()


def create_reporting_table() -> None:
    """``reporting.span_themes`` as 0002 made the other reporting tables (row-level security per tenant), readable by
    the roles already granted (``feedback-themes reporting grant``); ``span_count`` appended to the theme tables."""
    op.execute(f"CREATE TABLE reporting.span_themes (tenant_id text NOT NULL, project_id text NOT NULL, "
               f"{REPORTING_COLUMNS})")
    op.execute("CREATE INDEX ix_reporting_span_themes_project ON reporting.span_themes (tenant_id, project_id)")
    op.execute("ALTER TABLE reporting.span_themes ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_rows ON reporting.span_themes FOR SELECT USING (tenant_id IN "
               "(SELECT m.tenant_id FROM reporting.role_tenants m WHERE m.role_name = current_user))")
    op.execute("""DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT role_name FROM reporting.role_tenants LOOP
            EXECUTE format('GRANT SELECT ON reporting.span_themes TO %I', r.role_name);
        END LOOP; END $$""")
    for table in SPAN_COUNT_TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS span_count integer")
    for name in (*REPORTING_TABLES, "span_themes"):
        op.execute(f"COMMENT ON TABLE reporting.{name} IS '{COMMENT}'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS reporting.span_themes")
        for table in SPAN_COUNT_TABLES:
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS span_count")
        for name in REPORTING_TABLES:
            op.execute(f"COMMENT ON TABLE reporting.{name} IS "
                       f"'feedback-themes reporting schema version 1 (docs/bi.md)'")  # fmt: skip
    with op.batch_alter_table('span_themes', schema=None) as batch_op:
        batch_op.drop_index('ix_span_themes_job_theme')
    op.drop_table('span_themes')
