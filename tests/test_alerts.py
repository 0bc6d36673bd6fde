"""Alerts: the rules on synthetic inputs with known answers (worker/pipeline/alerts.py), their storage after a job
(idempotent, names as shown), the API list and the ``alerts`` report table (CSV; published on PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.test_reporting import postgres  # noqa: F401 - the fixture: a fresh PostgreSQL database
from worker.pipeline.alerts import AlertOptions, Earlier, Window, alert_windows, find_alerts

N_BEFORE, N_UPLOAD = 2000, 500


def window(n_before: int = N_BEFORE, n_upload: int = N_UPLOAD) -> Window:
    inside = np.r_[np.zeros(n_before, bool), np.ones(n_upload, bool)]
    return Window("batch", inside, ~inside, "this upload")


def node_links(node_id: int, before: int, upload: int, sentiment_before: float = 0.0,
               sentiment_upload: float = 0.0, offset: int = 0) -> pd.DataFrame:  # fmt: skip
    """A node with ``before`` members among the earlier comments and ``upload`` among the upload's (from ``offset``)."""
    rows = np.r_[np.arange(offset, offset + before), N_BEFORE + np.arange(offset % N_UPLOAD, offset % N_UPLOAD + upload)]  # fmt: skip
    sentiment = np.r_[np.full(before, sentiment_before), np.full(upload, sentiment_upload)]
    noise = np.random.default_rng(node_id).normal(0, 0.05, len(rows))
    return pd.DataFrame({"node_id": node_id, "row": rows, "activation": np.linspace(1, 0.1, len(rows)),
                         "sentiment": sentiment + noise})  # fmt: skip


def nodes_frame(*specs: tuple[int, bool], parent: dict[int, int] | None = None) -> pd.DataFrame:
    parent = parent or {}
    return pd.DataFrame([{"node_id": n, "level": 3 if n in parent else 2, "parent": parent.get(n),
                          "name": f"node {n}", "is_new": new} for n, new in specs])  # fmt: skip


def findings(nodes: pd.DataFrame, links: list[pd.DataFrame], options: AlertOptions | None = None):  # type: ignore[no-untyped-def]
    scores = np.zeros(N_BEFORE + N_UPLOAD)
    return find_alerts(nodes, pd.concat(links, ignore_index=True), scores, [window()], options or AlertOptions())


def test_a_planted_spike_fires_and_a_flat_node_does_not():
    found = findings(nodes_frame((1, False), (2, False)),
                     [node_links(1, before=20, upload=30), node_links(2, before=100, upload=25, offset=100)])  # fmt: skip
    assert [(f.kind, f.node_id) for f in found] == [("spike", 1)]
    spike = found[0].figures
    assert (spike["count"], spike["n"], spike["baseline_count"], spike["baseline_n"]) == (30, 500, 20, 2000)
    assert spike["share"] == 0.06 and spike["baseline_share"] == 0.01 and spike["lift"] == 6.0
    assert spike["q_value"] < 0.01 and spike["p_value"] <= spike["q_value"]
    assert found[0].title == "Spike: “node 1” is 6.0 % of this upload vs 1.0 % before (×6.0)"
    assert len(found[0].examples) == 3 and all(r >= N_BEFORE for r in found[0].examples)
    # alerted after the previous job already (as a spike or as a new theme): not again
    nodes, links = nodes_frame((1, False)), node_links(1, before=20, upload=30)
    scores, no_rows = np.zeros(N_BEFORE + N_UPLOAD), np.zeros(0, dtype=np.int64)
    for kind in ("spike", "new_theme"):
        assert find_alerts(nodes, links, scores, [window()], already=[Earlier(1, kind, no_rows)]) == []
    assert len(find_alerts(nodes, links, scores, [window()], already=[Earlier(1, "sentiment_drop", no_rows)])) == 1
    # another node then (the tree grew), holding most of these comments: the same change again
    same = Earlier(9, "spike", np.arange(N_BEFORE, N_BEFORE + 20))
    other = Earlier(9, "spike", np.arange(N_BEFORE, N_BEFORE + 10))
    assert find_alerts(nodes, links, scores, [window()], already=[same]) == []
    assert len(find_alerts(nodes, links, scores, [window()], already=[other])) == 1


def test_benjamini_hochberg_is_applied_across_the_nodes_of_a_window():
    """A node with p ≈ 0.0076 fires alone (q = p < 0.01) but not among ten flat nodes (q = 11 p)."""
    weak = node_links(1, before=15, upload=11)
    alone = findings(nodes_frame((1, False)), [weak])
    assert [f.node_id for f in alone] == [1] and alone[0].figures["q_value"] == alone[0].figures["p_value"]
    flat = [node_links(n, before=100, upload=25, offset=100 * n) for n in range(2, 12)]
    crowded = findings(nodes_frame((1, False), *[(n, False) for n in range(2, 12)]), [weak, *flat])
    assert crowded == []


def test_min_count_and_min_lift():
    few = node_links(1, before=0, upload=9)  # 9 comments, none before: below min_count 10
    assert findings(nodes_frame((1, False)), [few]) == []
    assert [f.node_id for f in findings(nodes_frame((1, False)), [few], AlertOptions(min_count=5))] == [1]
    mild = node_links(2, before=400, upload=150)  # 30 % vs 20 %: significant, but only ×1.5
    assert findings(nodes_frame((2, False)), [mild]) == []
    assert [f.kind for f in findings(nodes_frame((2, False)), [mild], AlertOptions(min_lift=1.4))] == ["spike"]


def test_a_new_theme_needs_its_comments_in_the_upload():
    found = findings(nodes_frame((1, True), (2, True)),
                     [node_links(1, before=0, upload=12), node_links(2, before=200, upload=50, offset=300)])  # fmt: skip
    # node 2 is new to the tree but holds old comments at the old rate: not news
    assert [(f.kind, f.node_id) for f in found] == [("new_theme", 1)]
    assert found[0].figures["lift"] is None and "none before" not in found[0].title
    assert found[0].title.startswith("New theme: “node 1” — 12 comments, 2.4 % of this upload")


def test_a_sentiment_drop():
    found = findings(nodes_frame((1, False), (2, False)),
                     [node_links(1, before=200, upload=50, sentiment_before=0.3, sentiment_upload=-0.2),
                      node_links(2, before=200, upload=50, sentiment_before=0.3, sentiment_upload=0.2, offset=500)])  # fmt: skip
    assert [(f.kind, f.node_id) for f in found] == [("sentiment_drop", 1)]
    figures = found[0].figures
    assert figures["sentiment_mean"] == pytest.approx(-0.2, abs=0.02)
    assert figures["baseline_sentiment"] == pytest.approx(0.3, abs=0.02) and figures["q_value"] < 0.01
    assert found[0].title == (f"Sentiment drop: “node 1” averages {figures['sentiment_mean']:+.2f} in this upload vs "
                              f"{figures['baseline_sentiment']:+.2f} before (50 comments)")  # fmt: skip


def test_overlapping_alerts_fold_into_the_strongest_and_the_cap_keeps_the_strongest():
    theme, sub = node_links(1, before=20, upload=60), node_links(2, before=10, upload=40, offset=100)
    nodes = nodes_frame((1, False), (2, False), parent={2: 1})
    # a sub-theme's alert folds into its theme's of the same kind, overlapping or not
    assert [f.node_id for f in findings(nodes, [theme, sub])] == [1]
    assert {f.node_id for f in findings(nodes, [theme, sub], AlertOptions(fold_sub_themes=False))} == {1, 2}
    # any node's alert whose comments in the window are mostly a stronger alert's: one change, one alert
    twin = node_links(3, before=15, upload=40)  # the theme's first 40 comments of the upload
    apart = node_links(4, before=15, upload=40, offset=300)
    three = nodes_frame((1, False), (3, False), (4, False))
    assert [f.node_id for f in findings(three, [theme, twin, apart])] == [1, 4]
    spikes = [node_links(n, before=10, upload=10 + 5 * n, offset=20 * n) for n in range(1, 6)]
    capped = findings(nodes_frame(*[(n, False) for n in range(1, 6)]), spikes, AlertOptions(max_alerts=2))
    assert [f.node_id for f in capped] == [5, 4]


def test_windows_from_dates():
    in_upload = np.r_[np.zeros(6, bool), np.ones(3, bool)]
    dates = pd.Series(pd.to_datetime(["2026-11-01", "2026-11-20", "2026-11-25", "2026-11-26", "2026-11-28",
                                      "2026-11-29", "2026-11-30", "2026-11-30", None]))  # fmt: skip
    windows = {w.name: w for w in alert_windows(in_upload, dates)}
    assert set(windows) == {"batch", "day", "week"}
    assert windows["day"].inside.tolist() == [False] * 6 + [True, True, False]
    assert windows["day"].before.tolist() == [True] * 6 + [False] * 3
    assert windows["week"].inside.tolist() == [False, False, True, True, True, True, True, True, False]
    assert (windows["week"].start, windows["week"].end) == ("2026-11-24", "2026-11-30")
    # no dates: the upload only; a day holding exactly the upload's comments is the batch window again
    assert [w.name for w in alert_windows(in_upload, pd.Series([None] * 9))] == ["batch"]
    same = pd.Series(pd.to_datetime(["2026-11-01"] * 6 + ["2026-11-30"] * 3))
    assert [w.name for w in alert_windows(in_upload, same)] == ["batch"]


# ---------------------------------------------------------------- storage, API, report


def make_project(tenant: str = "alice") -> tuple[str, str, str]:
    """A project with a finished first job (400 comments) and a second job (100 comments) whose stored tree has a
    spike (theme 10), a flat theme (11) with a new sub-theme (2000001) of the upload, and a sentiment drop (12)."""
    from sqlalchemy import insert, select

    from service.storage.models import Document, DocumentTheme, Job, Project, Tenant, ThemeRow

    start = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
        project = Project(tenant_id=tenant_id, name="shop")
        session.add(project)
        session.flush()
        jobs = [Job(tenant_id=tenant_id, project_id=project.id, source="-", source_kind="json", status=status,
                    created_at=start + timedelta(days=i)) for i, status in enumerate(("succeeded", "running"))]  # fmt: skip
        session.add_all(jobs)
        session.flush()
        first, second = jobs[0].id, jobs[1].id
        docs = [{"project_id": project.id, "job_id": first if i < 400 else second, "doc_id": f"D{i:03d}",
                 "text": f"comment {i}", "date": start + timedelta(days=i // 20), "sentiment_score": 0.1}
                for i in range(500)]  # fmt: skip
        session.execute(insert(Document), docs)
        ids = dict(session.execute(select(Document.doc_id, Document.id).where(Document.project_id == project.id)).all())
        members = {10: list(range(4)) + list(range(400, 420)), 11: list(range(100, 140)) + list(range(440, 452)),
                   2_000_001: list(range(440, 452)), 12: list(range(200, 260)) + list(range(460, 475))}  # fmt: skip
        names = {10: "Lost parcels", 11: "Staff", 2_000_001: "Staff at the new shop", 12: "Refunds"}
        session.execute(insert(ThemeRow), [
            {"job_id": second, "theme_id": t, "project_id": project.id, "level": 3 if t > 1000 else 2,
             "parent_id": 11 if t > 1000 else None, "label": names[t], "size": len(m), "sentiment_mean": 0.0,
             "first_seen_job": second if t > 1000 else first, "record": {"id": t, "name": names[t], "label": names[t]}}
            for t, m in members.items()])  # fmt: skip
        session.execute(insert(DocumentTheme), [
            {"job_id": second, "theme_id": t, "document_id": ids[f"D{r:03d}"], "activation": 1 - r / 1000,
             "sentiment": (-0.5 if r >= 400 else 0.5) if t == 12 else None}
            for t, m in members.items() for r in m])  # fmt: skip
        return project.id, first, second


def add_alert(project_id: str) -> None:
    """A made-up alert of the project's current job (a project's first job has none), for report tests."""
    from service.storage.models import Alert, Project

    with session_scope() as session:
        job_id = session.get(Project, project_id).current_job_id
        session.add(Alert(project_id=project_id, job_id=job_id, key=f"{job_id}:spike:batch:3", kind="spike",
                          window="batch", theme_id=3, level=2, title="Spike", figures={"count": 5}))  # fmt: skip


def session_scope():  # type: ignore[no-untyped-def]
    from service.storage.session import session_scope as scope

    return scope()


def stored_alerts(job_id: str) -> list:
    from sqlalchemy import select

    from service.storage.models import Alert

    with session_scope() as session:
        return list(session.scalars(select(Alert).where(Alert.job_id == job_id).order_by(Alert.id)))


@pytest.fixture
def alerted(client, alice):
    """``make_project`` with the second job's alerts stored and the job made the project's current one."""
    from service.storage.alerts import store_job_alerts
    from service.storage.models import Project

    project_id, first, second = make_project()
    with session_scope() as session:
        assert store_job_alerts(session, first) == []  # the first job has no history
        store_job_alerts(session, second)
        session.get(Project, project_id).current_job_id = second
    return client, alice, project_id, second


def test_stored_alerts_are_idempotent_and_named_as_shown(alerted):
    from service.storage.alerts import list_job_alerts, store_job_alerts
    from service.storage.models import ThemeEdit

    _, _, project_id, job_id = alerted
    alerts = stored_alerts(job_id)
    assert {(a.kind, a.window, a.theme_id) for a in alerts} == {
        ("spike", "batch", 10), ("new_theme", "batch", 2_000_001), ("sentiment_drop", "batch", 12)}  # fmt: skip
    keys = sorted(a.key for a in alerts)
    assert f"{job_id}:spike:batch:10" in keys
    spike = next(a for a in alerts if a.kind == "spike")
    assert spike.examples[0] == {"doc_id": "D400", "text": "comment 400"} and len(spike.examples) == 3
    assert spike.figures["count"] == 20 and spike.figures["baseline_count"] == 4 and spike.level == 2
    with session_scope() as session:
        store_job_alerts(session, job_id)  # recomputed: the same alerts, once each
        session.add(ThemeEdit(project_id=project_id, theme_id=10, label="Parcels gone missing"))
    assert sorted(a.key for a in stored_alerts(job_id)) == keys
    with session_scope() as session:
        shown = {a["theme"]["id"]: a["theme"]["name"] for a in list_job_alerts(session, job_id)}
    assert shown == {10: "Parcels gone missing", 2_000_001: "Staff at the new shop", 12: "Refunds"}


def test_the_alerts_api(alerted):
    from tests.api_helpers import assert_problem, new_key

    client, alice, project_id, _ = alerted
    url = f"/v1/projects/{project_id}/alerts"
    page = client.get(url, headers=alice).json()
    assert len(page["alerts"]) == 3 and page["next_cursor"] is None
    first = page["alerts"][0]
    assert set(first) >= {"id", "kind", "window", "theme", "title", "figures", "examples", "created_at", "job_id"}
    assert [a["kind"] for a in client.get(url, headers=alice, params={"kind": "spike"}).json()["alerts"]] == ["spike"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get(url, headers=alice, params={"since": later}).json()["alerts"] == []
    one = client.get(url, headers=alice, params={"limit": 2}).json()
    rest = client.get(url, headers=alice, params={"limit": 2, "cursor": one["next_cursor"]}).json()
    assert len(one["alerts"]) == 2 and len(rest["alerts"]) == 1
    assert {a["id"] for a in one["alerts"] + rest["alerts"]} == {a["id"] for a in page["alerts"]}
    assert_problem(client.get(url, headers=new_key("bob")), 404)
    assert_problem(client.get(url, headers=alice, params={"kind": "nonsense"}), 422)
    assert_problem(client.get(url, headers=alice, params={"cursor": "!!"}), 400)


def test_the_alerts_report(alerted):
    client, alice, project_id, _ = alerted
    response = client.get(f"/v1/projects/{project_id}/reports/alerts.csv", headers=alice)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    from worker.pipeline.output import ALERTS_COLUMNS

    assert list(rows[0]) == ALERTS_COLUMNS and len(rows) == 3
    spike = next(r for r in rows if r["kind"] == "spike")
    assert (spike["node_id"], spike["name"], spike["count"], spike["window"]) == ("10", "Lost parcels", "20", "batch")
    assert float(spike["share"]) == 0.2 and float(spike["baseline_share"]) == 0.01


@pytest.mark.services
def test_alerts_are_published_to_the_reporting_schema(postgres):  # noqa: F811 - the fixture imported above
    from sqlalchemy import text

    from service.storage.alerts import store_job_alerts
    from service.storage.models import Project
    from service.storage.reporting_schema import publish_reporting
    from tests.api_helpers import new_key

    new_key("alice")
    project_id, _, second = make_project()
    with session_scope() as session:
        store_job_alerts(session, second)
        session.get(Project, project_id).current_job_id = second
        session.flush()
        assert publish_reporting(session, project_id, ("alerts",))
    with session_scope() as session:
        rows = session.execute(text('SELECT kind, "window", node_id, name, count FROM reporting.alerts '
                                    "WHERE project_id = :p ORDER BY node_id"), {"p": project_id}).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("spike", "batch", 10, "Lost parcels", 20), ("sentiment_drop", "batch", 12, "Refunds", 15),
                                        ("new_theme", "batch", 2_000_001, "Staff at the new shop", 12)]  # fmt: skip


def test_a_subject_of_the_newest_upload_is_a_theme_at_that_uploads_size_floor():
    """2,000 comments (smallest theme: 10), the last 400 the newest upload (its own floor: 3). Eight comments of the
    upload make a theme; eight spread over old and new comments do not."""
    import scipy.sparse as sp

    from worker.pipeline.themes import ThemeOptions, build_themes

    dense = np.zeros((2000, 3), dtype=np.float32)
    dense[1600:1608, 0] = 1.0  # a new subject: every comment in the upload
    dense[[0, 1, 2, 3, 1700, 1701, 1702, 1703], 1] = 1.0  # half old, half new
    dense[:40, 2] = 1.0  # an old theme above the floor
    acts, decoder = sp.csr_matrix(dense), np.eye(4, 3, dtype=np.float32)
    recent = np.r_[np.zeros(1600, bool), np.ones(400, bool)]
    assert [t.id for t in build_themes(acts, decoder)] == [2]
    assert [t.id for t in build_themes(acts, decoder, recent=recent)] == [0, 2]
    assert [t.id for t in build_themes(acts, decoder, ThemeOptions(min_size=10), recent=recent)] == [2]
