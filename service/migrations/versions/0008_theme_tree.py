"""theme tree: categories, themes and sub-themes in ``themes``; theme groups moved into it; reporting schema version 3

``themes`` holds every node of a job's theme tree: ``level`` (1 category, 2 theme, 3 sub-theme; existing rows are
themes) and ``parent_id``. Each job's theme groups move into the tree: the ``union`` groups of the job's coarsest
level become its categories (ids 1_000_001, 1_000_002, … largest first, named by the group's label), every theme in
none of them goes under one category "Other themes", and each category gets membership rows in
``document_themes`` (the union of its themes' members, each with its highest activation). Broader groups and
sub-theme groups (views that held within one job) are dropped, and so is ``theme_groups``.

PostgreSQL: ``reporting.theme_groups`` is dropped, ``reporting.theme_tree`` and ``reporting.document_nodes`` are
created (row-level security per tenant, readable by the roles already granted, as 0007 made
``reporting.span_themes``), ``reporting.themes`` gains ``name`` and ``parent_id``, and every reporting table is
commented as version 3. A project's new tables fill when it is next published (its next job or edit, or
``feedback-themes reporting publish``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:00:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Literal here so that this migration never changes with later code (docs/bi.md).
CATEGORY_ID_BASE = 1_000_000
OTHER_THEMES = "Other themes"
KEYWORDS = 10
EXAMPLES = 5
REPORTING_TABLES = {
    "theme_tree": "node_id integer, level integer, parent_id integer, name text, keywords text, size integer, "
                  "share double precision, sentiment_mean double precision, negative double precision, "
                  "neutral double precision, positive double precision, rating_mean double precision, "
                  "rating_count integer, cohesion double precision, span_count integer, emerging boolean, "
                  "impact_coef double precision, impact_low double precision, impact_high double precision, "
                  "merged_theme_ids text, original_name text",
    "document_nodes": "doc_id text, node_id integer, level integer, activation double precision",
}
THEMES_COLUMNS = "ADD COLUMN IF NOT EXISTS name text, ADD COLUMN IF NOT EXISTS parent_id integer"
# reporting.theme_groups as 0003, 0005 and 0007 left it (for the downgrade)
GROUPS_COLUMNS = ("group_id integer, level integer, label text, keywords text, size integer, share double precision, "
                  "sentiment_mean double precision, negative double precision, neutral double precision, "
                  "positive double precision, rating_mean double precision, rating_count integer, theme_ids text, "
                  "cohesion double precision, kind text, span_count integer")
VERSION_2_TABLES = ("projects", "themes", "document_themes", "documents", "theme_trends", "theme_impact",
                    "span_themes")  # fmt: skip
COMMENT = "feedback-themes reporting schema version {} (docs/bi.md)"

jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("created_at", sa.DateTime), sa.column("result", sa.JSON))
documents = sa.table("documents", sa.column("id", sa.Integer), sa.column("project_id", sa.String),
                     sa.column("rating", sa.Float), sa.column("sentiment_score", sa.Float),
                     sa.column("sentiment_label", sa.String))  # fmt: skip
themes = sa.table("themes", sa.column("job_id", sa.String), sa.column("theme_id", sa.Integer),
                  sa.column("project_id", sa.String), sa.column("label", sa.Text), sa.column("size", sa.Integer),
                  sa.column("sentiment_mean", sa.Float), sa.column("first_seen_job", sa.String),
                  sa.column("record", sa.JSON), sa.column("derived", sa.JSON), sa.column("level", sa.Integer),
                  sa.column("parent_id", sa.Integer))  # fmt: skip
theme_groups = sa.table("theme_groups", sa.column("job_id", sa.String), sa.column("group_id", sa.Integer),
                        sa.column("size", sa.Integer), sa.column("record", sa.JSON))  # fmt: skip
document_themes = sa.table("document_themes", sa.column("job_id", sa.String), sa.column("theme_id", sa.Integer),
                           sa.column("document_id", sa.Integer), sa.column("activation", sa.Float))  # fmt: skip
span_themes = sa.table("span_themes", sa.column("job_id", sa.String), sa.column("theme_id", sa.Integer),
                       sa.column("document_id", sa.Integer), sa.column("span_index", sa.Integer))  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('level', sa.Integer(), nullable=False, server_default='2'))
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
    bind = op.get_bind()
    for (job_id,) in bind.execute(sa.select(themes.c.job_id).distinct().order_by(themes.c.job_id)).all():
        move_groups(bind, job_id)
    op.drop_table('theme_groups')
    if bind.dialect.name == "postgresql":
        upgrade_reporting()


# ---------------------------------------------------------------- groups → tree


def move_groups(bind: Any, job_id: str) -> None:
    """The job's categories from its groups (the coarsest level's unions; "Other themes" for the rest), with their
    membership rows, and its themes under them."""
    rows = {r.theme_id: r for r in bind.execute(sa.select(themes).where(themes.c.job_id == job_id)).all()}
    groups = [g for (g,) in bind.execute(sa.select(theme_groups.c.record).where(theme_groups.c.job_id == job_id)
                                         .order_by(theme_groups.c.size.desc(), theme_groups.c.group_id))]  # fmt: skip
    unions = [g for g in groups if g.get("kind", "union") == "union"]
    coarsest = max((g.get("level", 0) for g in unions), default=None)
    by_size = sorted(rows, key=lambda t: (-rows[t].size, t))
    placed: set[int] = set()
    categories: list[tuple[dict | None, list[int]]] = []
    for group in (g for g in unions if g.get("level", 0) == coarsest):
        children = [t for t in by_size if t in set(group.get("themes", [])) and t not in placed]
        if children:
            placed.update(children)
            categories.append((group, children))
    if rest := [t for t in by_size if t not in placed]:
        categories.append((None, rest))
    n_documents = job_documents(bind, job_id, rows)
    for n, (group, children) in enumerate(categories, start=1):
        add_category(bind, job_id, CATEGORY_ID_BASE + n, group, [rows[t] for t in children], n_documents)


def job_documents(bind: Any, job_id: str, rows: dict[int, Any]) -> int:
    """How many comments the job covered: its metadata's ``n_documents``, else as its themes' size and share say."""
    result = bind.execute(sa.select(jobs.c.result).where(jobs.c.id == job_id)).scalar()
    if isinstance(result, dict) and result.get("n_documents"):
        return int(result["n_documents"])
    shares = [r.record["size"] / r.record["share"] for r in rows.values() if r.record.get("share")]
    if shares:
        return max(1, round(max(shares)))
    project = next(iter(rows.values())).project_id
    return bind.execute(sa.select(sa.func.count()).select_from(documents)
                        .where(documents.c.project_id == project)).scalar() or 1  # fmt: skip


def add_category(bind: Any, job_id: str, category: int, group: dict | None, children: list[Any],
                 n_documents: int) -> None:  # fmt: skip
    """Insert one category: its membership rows, its node record (figures over its members; name, keywords,
    examples and cohesion from its group), and its themes' parent."""
    ids = [r.theme_id for r in children]
    members = (sa.select(sa.literal(job_id, sa.String), sa.literal(category, sa.Integer), document_themes.c.document_id,
                         sa.func.max(document_themes.c.activation))
               .where(document_themes.c.job_id == job_id, document_themes.c.theme_id.in_(ids))
               .group_by(document_themes.c.document_id))  # fmt: skip
    bind.execute(sa.insert(document_themes).from_select(["job_id", "theme_id", "document_id", "activation"], members))
    figures = member_figures(bind, job_id, category, n_documents)
    records = [r.record for r in children]
    name = group["label"] if group and group.get("label") else OTHER_THEMES
    spans = sa.select(span_themes.c.document_id, span_themes.c.span_index).where(
        span_themes.c.job_id == job_id, span_themes.c.theme_id.in_(ids)).distinct().subquery()  # fmt: skip
    span_count = bind.execute(sa.select(sa.func.count()).select_from(spans)).scalar() or (
        group.get("span_count", figures["size"]) if group else figures["size"])  # fmt: skip
    seen = first_seen(bind, job_id, [r.first_seen_job for r in children])
    record = {
        "id": category, "label": name, "name": name, "level": 1, "parent": None, "children": ids,
        "keywords": group["keywords"] if group and group.get("keywords") else merged_keywords(records),
        **figures, "span_count": span_count, "cohesion": group.get("cohesion") if group else None,
        "examples": group["examples"] if group and group.get("examples") else best_examples(records),
        "features": sorted({f for r in records for f in r.get("features", [])}),
        "first_seen_job": seen, "is_new": seen == job_id,
    }  # fmt: skip
    bind.execute(sa.insert(themes).values(
        job_id=job_id, theme_id=category, project_id=children[0].project_id, label=name, size=figures["size"],
        sentiment_mean=figures["sentiment"]["mean"], first_seen_job=seen, record=record, derived=None, level=1,
        parent_id=None))  # fmt: skip
    update = (sa.update(themes).where(themes.c.job_id == job_id, themes.c.theme_id == sa.bindparam("node"))
              .values(parent_id=category, record=sa.bindparam("node_record", type_=sa.JSON)))  # fmt: skip
    nodes = [{**r.record, "name": r.record.get("name", r.record["label"]), "level": 2, "parent": category,
              "children": []} for r in children]  # fmt: skip
    bind.execute(update, [{"node": r.theme_id, "node_record": n} for r, n in zip(children, nodes)])


def member_figures(bind: Any, job_id: str, category: int, n_documents: int) -> dict[str, Any]:
    """Size, share, sentiment and rating of a category's member comments."""
    d = documents.c

    def share(label: str) -> Any:
        return sa.func.sum(sa.case((d.sentiment_label == label, 1), else_=0))

    row = bind.execute(
        sa.select(sa.func.count(), sa.func.avg(d.sentiment_score), share("negative"), share("neutral"),
                  share("positive"), sa.func.avg(d.rating), sa.func.count(d.rating))
        .select_from(document_themes.join(documents, documents.c.id == document_themes.c.document_id))
        .where(document_themes.c.job_id == job_id, document_themes.c.theme_id == category)
    ).one()  # fmt: skip
    size, mean, negative, neutral, positive, rating, rated = row
    n = max(1, size)
    return {"size": int(size), "share": round(size / max(1, n_documents), 4),
            "sentiment": {"mean": round(float(mean or 0.0), 4), "negative": round(float(negative or 0) / n, 4),
                          "neutral": round(float(neutral or 0) / n, 4), "positive": round(float(positive or 0) / n, 4)},
            "rating": {"mean": round(float(rating), 4), "count": int(rated)} if rated else None}  # fmt: skip


def first_seen(bind: Any, job_id: str, seen: list[str]) -> str:
    """A category is as old as its oldest theme: the job itself when every theme is new in it."""
    earlier = sorted({s for s in seen if s and s != job_id})
    if not earlier:
        return job_id
    created = dict(bind.execute(sa.select(jobs.c.id, jobs.c.created_at).where(jobs.c.id.in_(earlier))).all())
    return min(earlier, key=lambda s: (created.get(s) is None, created.get(s) or 0, s))


def merged_keywords(records: list[dict]) -> list[str]:
    keywords: list[str] = []
    for record in records:
        keywords += [k for k in record.get("keywords", []) if k not in keywords]
    return keywords[:KEYWORDS]


def best_examples(records: list[dict]) -> list[dict]:
    examples: dict[str, dict] = {}
    for record in records:
        for example in record.get("examples", []):
            examples.setdefault(example["doc_id"], example)
    return sorted(examples.values(), key=lambda e: -e.get("activation", 0))[:EXAMPLES]


# ---------------------------------------------------------------- reporting (PostgreSQL)


def upgrade_reporting() -> None:
    """Version 3: ``theme_groups`` dropped, ``theme_tree`` and ``document_nodes`` made as 0007 made ``span_themes``
    (row-level security per tenant, readable by the roles already granted), ``name`` and ``parent_id`` appended to
    ``themes``."""
    op.execute("DROP TABLE IF EXISTS reporting.theme_groups")
    for name, columns in REPORTING_TABLES.items():
        create_reporting_table(name, columns)
    op.execute(f"ALTER TABLE reporting.themes {THEMES_COLUMNS}")
    for name in (*VERSION_2_TABLES, *REPORTING_TABLES):
        op.execute(f"COMMENT ON TABLE reporting.{name} IS '{COMMENT.format(3)}'")


def create_reporting_table(name: str, columns: str) -> None:
    op.execute(f"CREATE TABLE reporting.{name} (tenant_id text NOT NULL, project_id text NOT NULL, {columns})")
    op.execute(f"CREATE INDEX ix_reporting_{name}_project ON reporting.{name} (tenant_id, project_id)")
    op.execute(f"ALTER TABLE reporting.{name} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_rows ON reporting.{name} FOR SELECT USING (tenant_id IN "
               f"(SELECT m.tenant_id FROM reporting.role_tenants m WHERE m.role_name = current_user))")
    op.execute(f"""DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT role_name FROM reporting.role_tenants LOOP
            EXECUTE format('GRANT SELECT ON reporting.{name} TO %I', r.role_name);
        END LOOP; END $$""")


# ---------------------------------------------------------------- downgrade


def downgrade() -> None:
    """Back to groups: each job's categories of at least two themes become its ``union`` groups (all of level 2, so
    that upgrading again makes the same categories); sub-themes, categories and their rows (memberships, spans,
    trends, edits) are dropped."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        downgrade_reporting()
    op.create_table('theme_groups',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'group_id')
    )
    categories = bind.execute(sa.select(themes.c.job_id, themes.c.theme_id, themes.c.record)
                              .where(themes.c.level == 1)).all()  # fmt: skip
    groups = [{"job_id": job_id, "group_id": node - CATEGORY_ID_BASE, "size": record["size"],
               "record": {**node_fields_dropped(record), "id": node - CATEGORY_ID_BASE,
                          "level": 2, "kind": "union",
                          "themes": record.get("children", [])}}
              for job_id, node, record in categories if len(record.get("children", [])) >= 2]  # fmt: skip
    if groups:
        bind.execute(sa.insert(theme_groups), groups)
    for table in ("document_themes", "span_themes", "theme_trends"):
        op.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM themes t WHERE t.job_id = {table}.job_id "
                   f"AND t.theme_id = {table}.theme_id AND t.level <> 2)")
    op.execute(f"DELETE FROM theme_edits WHERE theme_id >= {CATEGORY_ID_BASE}")
    op.execute("DELETE FROM themes WHERE level <> 2")
    update = (sa.update(themes).where(themes.c.job_id == sa.bindparam("job"), themes.c.theme_id == sa.bindparam("node"))
              .values(record=sa.bindparam("node_record", type_=sa.JSON)))  # fmt: skip
    rows = [{"job": job_id, "node": node, "node_record": node_fields_dropped(record)}
            for job_id, node, record in bind.execute(sa.select(themes.c.job_id, themes.c.theme_id, themes.c.record))]
    if rows:
        bind.execute(update, rows)
    with op.batch_alter_table('themes', schema=None) as batch_op:
        batch_op.drop_column('parent_id')
        batch_op.drop_column('level')


def node_fields_dropped(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("level", "parent", "children", "name")}


def downgrade_reporting() -> None:
    for name in REPORTING_TABLES:
        op.execute(f"DROP TABLE IF EXISTS reporting.{name}")
    op.execute("ALTER TABLE reporting.themes DROP COLUMN IF EXISTS parent_id, DROP COLUMN IF EXISTS name")
    create_reporting_table("theme_groups", GROUPS_COLUMNS)
    for name in (*VERSION_2_TABLES, "theme_groups"):
        op.execute(f"COMMENT ON TABLE reporting.{name} IS '{COMMENT.format(2)}'")
