"""theme edits, trends, report tokens, derived theme figures; the PostgreSQL ``reporting`` schema

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# The reporting schema, version 1 (docs/bi.md). Literal here so that this migration never changes with later code.
REPORTING_TABLES = {
    "projects": "project_name text, job_id text, published_at timestamptz, schema_version integer",
    "themes": "theme_id integer, label text, keywords text, size integer, share double precision, "
              "sentiment_mean double precision, negative double precision, neutral double precision, "
              "positive double precision, rating_mean double precision, rating_count integer, emerging boolean, "
              "impact_coef double precision, impact_low double precision, impact_high double precision, "
              "merged_theme_ids text, original_label text",
    "document_themes": "doc_id text, theme_id integer, activation double precision",
    "documents": "doc_id text, text text, sentiment_score double precision, sentiment_label text, "
                 "rating double precision, date timestamptz",
    "theme_trends": "theme_id integer, label text, period text, period_start date, documents integer, "
                    "period_documents integer, share double precision, emerging boolean",
    "theme_impact": "theme_id integer, label text, coef double precision, low double precision, "
                    "high double precision, rated_documents integer",
}


def upgrade() -> None:
    op.create_table('theme_edits',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'theme_id')
    )
    op.create_table('theme_trends',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('documents', sa.Integer(), nullable=False),
    sa.Column('period_documents', sa.Integer(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'theme_id', 'period_start')
    )
    op.create_table('report_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('report_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_tokens_project_id'), ['project_id'], unique=False)
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('derived', sa.JSON(), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        create_reporting_schema()


def create_reporting_schema() -> None:
    """Tables with tenant_id and project_id, readable through row-level security by the roles mapped to a tenant."""
    op.execute("CREATE SCHEMA IF NOT EXISTS reporting")
    op.execute("CREATE TABLE reporting.role_tenants (role_name text PRIMARY KEY, tenant_id text NOT NULL)")
    op.execute("ALTER TABLE reporting.role_tenants ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY own_mapping ON reporting.role_tenants FOR SELECT USING (role_name = current_user)")
    for name, columns in REPORTING_TABLES.items():
        op.execute(f"CREATE TABLE reporting.{name} (tenant_id text NOT NULL, project_id text NOT NULL, {columns})")
        op.execute(f"CREATE INDEX ix_reporting_{name}_project ON reporting.{name} (tenant_id, project_id)")
        op.execute(f"ALTER TABLE reporting.{name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_rows ON reporting.{name} FOR SELECT USING (tenant_id IN "
                   f"(SELECT m.tenant_id FROM reporting.role_tenants m WHERE m.role_name = current_user))")
        op.execute(f"COMMENT ON TABLE reporting.{name} IS 'feedback-themes reporting schema version 1 (docs/bi.md)'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SCHEMA IF EXISTS reporting CASCADE")
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.drop_column('derived')
    with op.batch_alter_table('report_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_tokens_project_id'))
    op.drop_table('report_tokens')
    op.drop_table('theme_trends')
    op.drop_table('theme_edits')
