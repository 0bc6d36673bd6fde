"""segments, alerts, webhooks: comments' metadata columns, a comment's sentiment in each node, alerts, webhooks and
their deliveries; reporting schema version 4 (PostgreSQL)

``document_attributes`` keeps every metadata cell of a comment (as text, and as a number or a date where it reads
as one), ``project_columns`` a project's metadata columns with their types, and ``jobs.metadata_columns`` those of
one upload. ``document_themes.sentiment`` is a comment's sentiment in the node (rows stored before are null: read
as the comment's own score). ``alerts`` holds the alerts computed after each job, ``webhooks`` a project's
endpoints and ``webhook_deliveries`` each event sent to one.

PostgreSQL: ``reporting.document_attributes`` and ``reporting.alerts`` are created (row-level security per
tenant, readable by the roles already granted, as 0007 made ``reporting.span_themes``), and every reporting table
is commented as version 4. A project's new tables fill when it is next published.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Literal here so that this migration never changes with later code (docs/bi.md).
REPORTING_TABLES = {
    "document_attributes": "doc_id text, attribute text, attribute_type text, value text, "
                           "number_value double precision, date_value timestamp with time zone",
    "alerts": "alert_id integer, created_at timestamp with time zone, job_id text, kind text, \"window\" text, "
              "node_id integer, level integer, name text, title text, count integer, share double precision, "
              "baseline_share double precision, sentiment_mean double precision, "
              "baseline_sentiment double precision, p_value double precision",
}
VERSION_3_TABLES = ("projects", "themes", "document_themes", "documents", "theme_trends", "theme_impact",
                    "span_themes", "theme_tree", "document_nodes")  # fmt: skip
COMMENT = "feedback-themes reporting schema version {} (docs/bi.md)"


def upgrade() -> None:
    op.create_table('document_attributes',
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.Column('number', sa.Float(), nullable=True),
    sa.Column('date', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id', 'name')
    )
    with op.batch_alter_table('document_attributes', schema=None) as batch_op:
        batch_op.create_index('ix_document_attributes_lookup', ['project_id', 'name', 'value'], unique=False)
        batch_op.create_index('ix_document_attributes_number', ['project_id', 'name', 'number'], unique=False)
    op.create_table('project_columns',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('distinct_values', sa.Integer(), nullable=False),
    sa.Column('filled', sa.Integer(), nullable=False),
    sa.Column('segment', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'name')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metadata_columns', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('document_themes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sentiment', sa.Float(), nullable=True))
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('window', sa.String(length=16), nullable=False),
    sa.Column('theme_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('examples', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'key', name='uq_alerts_key')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_project_created', ['project_id', 'created_at'], unique=False)
        batch_op.create_index('ix_alerts_job_id', ['job_id'], unique=False)
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_project_id', ['project_id'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('webhook_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('webhook_id', 'event_key', name='uq_webhook_deliveries_event')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_status', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_webhook_id', ['webhook_id'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_project_id', ['project_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        upgrade_reporting()


def upgrade_reporting() -> None:
    """Version 4: ``document_attributes`` and ``alerts`` made as 0007 made ``span_themes`` (row-level security per
    tenant, readable by the roles already granted)."""
    for name, columns in REPORTING_TABLES.items():
        op.execute(f"CREATE TABLE reporting.{name} (tenant_id text NOT NULL, project_id text NOT NULL, {columns})")
        op.execute(f"CREATE INDEX ix_reporting_{name}_project ON reporting.{name} (tenant_id, project_id)")
        op.execute(f"ALTER TABLE reporting.{name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_rows ON reporting.{name} FOR SELECT USING (tenant_id IN "
                   f"(SELECT m.tenant_id FROM reporting.role_tenants m WHERE m.role_name = current_user))")
        op.execute(f"""DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT role_name FROM reporting.role_tenants LOOP
                EXECUTE format('GRANT SELECT ON reporting.{name} TO %I', r.role_name);
            END LOOP; END $$""")
    for name in (*VERSION_3_TABLES, *REPORTING_TABLES):
        op.execute(f"COMMENT ON TABLE reporting.{name} IS '{COMMENT.format(4)}'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in REPORTING_TABLES:
            op.execute(f"DROP TABLE IF EXISTS reporting.{name}")
        for name in VERSION_3_TABLES:
            op.execute(f"COMMENT ON TABLE reporting.{name} IS '{COMMENT.format(3)}'")
    op.drop_table('webhook_deliveries')
    op.drop_table('webhooks')
    op.drop_table('alerts')
    with op.batch_alter_table('document_themes', schema=None) as batch_op:
        batch_op.drop_column('sentiment')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('metadata_columns')
    op.drop_table('project_columns')
    op.drop_table('document_attributes')
