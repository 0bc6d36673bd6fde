"""End to end through real processes: upload → real Celery worker → themes and reports → an update of the project.

Embedded: ``feedback-themes serve`` (filesystem broker, SQLite). Production: ``feedback-themes api`` plus a
``cpu`` and a ``gpu``-queue worker over the local Redis and PostgreSQL (skipped only when those are unreachable).
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import httpx
import pytest

from tests.service_harness import (
    Processes,
    copy_rows,
    create_key,
    embedded_service,
    free_port,
    poll_job,
    reachable,
    service_env,
    upload_csv,
    wait_healthy,
)

pytestmark = pytest.mark.slow
NEW_TOPICS = ("colour", "website")
REDIS_URL = "redis://127.0.0.1:6379/7"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def split_sample(sample_csv: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Part A: six of the eight themes; part B: the comments about the other two (new topics)."""
    first = copy_rows(sample_csv, tmp_path / "part_a.csv", lambda i, line: line.rstrip().split(",")[-2] not in NEW_TOPICS)
    second = copy_rows(sample_csv, tmp_path / "part_b.csv", lambda i, line: line.rstrip().split(",")[-2] in NEW_TOPICS)
    return first, second


def members(client: httpx.Client, project: str, theme_id: int) -> set[str]:
    out: set[str] = set()
    cursor = None
    while True:
        page = client.get(f"/v1/projects/{project}/themes/{theme_id}", params={"limit": 500, "cursor": cursor}).json()
        out |= {m["doc_id"] for m in page["members"]}
        cursor = page["next_cursor"]
        if not cursor:
            return out


def run_flow(base: str, key: str, sample_csv: Path, tmp_path: Path) -> None:
    """The user's path: upload, poll, read themes and reports, upload more to the same project."""
    part_a, part_b = split_sample(sample_csv, tmp_path)
    client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
    fields = {"text_column": "text", "rating_column": "rating", "date_column": "date", "id_column": "id"}

    created = upload_csv(client, part_a, **fields)
    assert created.status_code == 202, created.text
    job, seen = poll_job(client, created.headers["location"])
    assert job["status"] == "succeeded", job
    stages = [s for s, _ in seen]
    assert len(set(stages)) >= 3 and [p for _, p in seen] == sorted(p for _, p in seen), seen
    assert job["stage"] == "done" and job["eta_seconds"] is None, job
    assert job["progress"] == 1.0 and job["counts"]["documents"] == len(part_a.read_text().splitlines()) - 1
    project = job["project_id"]

    themes = client.get(f"/v1/jobs/{job['id']}/themes", params={"limit": 500}).json()
    assert themes["metadata"]["n_themes"] == len(themes["themes"]) >= 5
    first_ids = {t["id"] for t in themes["themes"]}
    for theme in themes["themes"]:
        assert theme["label"] and len(theme["keywords"]) >= 5 and theme["examples"]
        assert theme["first_seen_job"] == job["id"] and theme["is_new"]
    by_sentiment = client.get(f"/v1/projects/{project}/themes", params={"sort": "sentiment", "order": "asc"}).json()
    means = [t["sentiment"]["mean"] for t in by_sentiment["themes"]]
    assert means == sorted(means)
    first_members = {t: members(client, project, t) for t in first_ids}
    first_tree = check_tree(client, project, job["id"], first_ids, first_members)

    for name, column in (("themes", "theme_id"), ("document_themes", "activation"), ("documents", "sentiment_label"),
                         ("theme_tree", "node_id"), ("document_nodes", "level")):
        report = client.get(f"/v1/projects/{project}/reports/{name}.csv")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(report.text)))
        assert rows and column in rows[0]
    assert len(list(csv.DictReader(io.StringIO(client.get(f"/v1/projects/{project}/reports/themes.csv").text)))) == len(
        first_ids
    )
    check_spans(client, project, themes, first_members)

    update = upload_csv(client, part_b, project=project, **fields)
    assert update.status_code == 202 and update.json()["project_id"] == project
    second, _ = poll_job(client, update.headers["location"])
    assert second["status"] == "succeeded", second
    current = client.get(f"/v1/projects/{project}/themes", params={"limit": 500}).json()
    assert current["metadata"]["job_id"] == second["id"]
    assert current["metadata"]["n_documents"] == len(sample_csv.read_text().splitlines()) - 1
    kept = [t for t in current["themes"] if t["id"] in first_ids]
    new = [t for t in current["themes"] if t["is_new"]]
    assert all(t["first_seen_job"] == job["id"] and not t["is_new"] for t in kept)
    assert all(t["first_seen_job"] == second["id"] for t in new)
    assert len(kept) >= 0.6 * len(first_ids), (len(kept), len(first_ids))
    same_meaning = sum(
        len(first_members[t["id"]] & members(client, project, t["id"])) >= 0.5 * len(first_members[t["id"]])
        for t in kept
    )
    assert same_meaning >= 0.8 * len(kept), (same_meaning, len(kept))
    part_b_ids = {row["id"] for row in csv.DictReader(part_b.open())}
    assert any(len(members(client, project, t["id"]) & part_b_ids) >= 0.5 * t["size"] for t in new), new
    current_ids = {t["id"] for t in current["themes"]}
    second_tree = check_tree(client, project, second["id"], current_ids,
                             {t: members(client, project, t) for t in current_ids})  # fmt: skip
    assert set(first_tree) & set(second_tree), (first_tree, second_tree)  # categories matched keep their ids


def check_tree(client: httpx.Client, project: str, job_id: str, theme_ids: set[int],
               theme_members: dict[int, set[str]]) -> dict[int, set[str]]:  # fmt: skip
    """The job's tree: a handful of categories over every theme (each under exactly one), a category's comments the
    union of its themes', sub-themes within their theme; ``/groups`` is gone. Returns each category's comments."""
    tree = client.get(f"/v1/jobs/{job_id}/tree").json()
    categories = tree["categories"]
    assert 2 <= len(categories) <= 15 and tree["metadata"]["n_categories"] == len(categories), tree["metadata"]
    placed = [t["id"] for c in categories for t in c["children"]]
    assert sorted(placed) == sorted(theme_ids)  # every theme once
    out = {}
    for category in categories:
        assert category["level"] == 1 and category["id"] > 1_000_000 and category["name"] and category["keywords"]
        own = [t["id"] for t in category["children"]]
        out[category["id"]] = members(client, project, category["id"])
        assert out[category["id"]] == set().union(*(theme_members[t] for t in own))
        assert category["size"] == len(out[category["id"]])
        for theme in category["children"]:
            assert theme["level"] == 2 and theme["name"]
            for sub in theme["children"]:
                assert sub["level"] == 3 and sub["id"] > 2_000_000 and not sub["children"]
                assert members(client, project, sub["id"]) <= theme_members[theme["id"]]
    node = client.get(f"/v1/projects/{project}/nodes/{categories[0]['id']}").json()
    assert node["level"] == 1 and sorted(node["children"]) == sorted(t["id"] for t in categories[0]["children"])
    assert client.get(f"/v1/jobs/{job_id}/groups").status_code == 410
    return out


def report_rows(client: httpx.Client, project: str, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(client.get(f"/v1/projects/{project}/reports/{name}.csv").text)))


def check_spans(client: httpx.Client, project: str, themes: dict, first_members: dict[int, set[str]]) -> None:
    """Themes are found over spans, counted over comments: the span_themes report, the themes' span_count, their
    examples' span and each listed comment's spans agree, at offsets into the comment's text. (The sample's comments
    are short, so each is one span; tests/test_span_reports.py and test_span_incremental.py cut comments.)"""
    assert themes["metadata"]["units"] == "comments" and themes["metadata"]["counts"]["spans"] >= len(first_members)
    texts = {r["doc_id"]: r["text"] for r in report_rows(client, project, "documents")}
    spans = report_rows(client, project, "span_themes")
    assert list(spans[0]) == ["doc_id", "span_index", "span_start", "span_end", "theme_id", "activation"]
    carried: dict[int, set[str]] = {}
    for row in spans:
        start, end = int(row["span_start"]), int(row["span_end"])
        assert 0 <= start < end <= len(texts[row["doc_id"]]), row
        carried.setdefault(int(row["theme_id"]), set()).add(row["doc_id"])
    assert carried == first_members  # a comment is a member when one of its spans carries the theme
    span_counts = {int(r["theme_id"]): int(r["span_count"]) for r in report_rows(client, project, "themes")}
    for theme in themes["themes"]:
        assert theme["span_count"] == span_counts[theme["id"]] == sum(r["theme_id"] == str(theme["id"]) for r in spans)
        assert theme["span_count"] >= theme["size"]
        for example in theme["examples"]:
            span = example["span"]
            assert example["text"][span["start"] : span["end"]] == span["text"] and span["text"].strip()
    theme = themes["themes"][0]
    page = client.get(f"/v1/projects/{project}/themes/{theme['id']}", params={"limit": 500}).json()
    listed = {(m["doc_id"], s["index"], s["start"], s["end"]) for m in page["members"] for s in m["spans"]}
    assert all(m["spans"] for m in page["members"])
    assert listed == {(r["doc_id"], int(r["span_index"]), int(r["span_start"]), int(r["span_end"])) for r in spans
                      if r["theme_id"] == str(theme["id"])}  # fmt: skip


def test_embedded_serve(tmp_path, sample_csv):
    with embedded_service(tmp_path, "acme") as (base, key):
        run_flow(base, key, sample_csv, tmp_path)


@pytest.fixture
def production_settings(tmp_path):
    """A fresh PostgreSQL database and an empty Redis database for one test."""
    if not (reachable(6379) and reachable(5432)):
        pytest.skip("needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (not reachable)")
    import psycopg
    import redis

    name = f"ft_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield {"database_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", "broker_url": REDIS_URL}
    redis.Redis.from_url(REDIS_URL).flushdb()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_production_api_and_workers(tmp_path, sample_csv, production_settings):
    env = service_env(tmp_path / "data", gpu_queue="true", **production_settings)
    key = create_key(env, "acme")
    port = free_port()
    procs = Processes(tmp_path / "logs")
    procs.start("worker-cpu", ["worker", "--queues", "cpu"], env)
    procs.start("worker-gpu", ["worker", "--queues", "gpu"], env)  # takes embedding and training (gpu_queue=true)
    procs.start("api", ["api", "--port", str(port)], env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        run_flow(f"http://127.0.0.1:{port}", key, sample_csv, tmp_path)
        gpu_log = (tmp_path / "logs" / "worker-gpu.log").read_text()
        cpu_log = (tmp_path / "logs" / "worker-cpu.log").read_text()
        ran = "Task feedback_themes.{}["
        assert ran.format("analyze") in gpu_log and ran.format("embed_chunk") in gpu_log
        assert ran.format("run_job") in cpu_log and ran.format("analyze") not in cpu_log
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
