"""A job's progress: the analysis reports every stage in order, moving inside ``train`` and ``themes``; the runner
lays the stages end to end on one bar, ends a job that succeeded in stage ``done``, and the API estimates the time
left from the pace so far."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from service.storage.jobs import eta_seconds
from tests.api_helpers import make_client, new_key, upload

SUBJECTS = ("late delivery parcel", "soft fabric sweater", "app crashed checkout", "rude staff store")


def clustered(n_per: int = 30, dim: int = 24, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Comments on four subjects, scored already, with an embedding near their subject's direction each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(SUBJECTS), dim))
    rows = np.repeat(np.arange(len(SUBJECTS)), n_per)
    vectors = centres[rows] + 0.3 * rng.normal(size=(len(rows), dim))
    texts = [f"{SUBJECTS[s]} comment {i}" for i, s in enumerate(rows)]
    docs = pd.DataFrame({"doc_id": [f"c{i}" for i in range(len(rows))], "text": texts, "rating": np.nan, "date": None,
                         "sentiment_score": 0.0, "sentiment_label": "neutral"})  # fmt: skip
    return docs, vectors.astype(np.float32)


def test_the_analysis_reports_each_stage_in_order_and_moves_inside_train_and_themes():
    from worker.pipeline.analyze import SMOOTHED, STAGES, THEME_STEPS, AnalysisOptions, analyze
    from worker.pipeline.spans import SpanOptions

    docs, vectors = clustered()
    calls: list[tuple[str, float]] = []
    options = AnalysisOptions(device="cpu", seed=0, n_latents=8, names=False, spans=SpanOptions(enabled=False))
    analyze(docs, options, embeddings=vectors, progress=lambda stage, f: calls.append((stage, f)))
    order = [s for i, (s, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != s]
    assert order == list(STAGES)  # each stage once, in order
    for stage in STAGES:
        fractions = [f for s, f in calls if s == stage]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0, (stage, fractions)
        assert fractions == sorted(fractions), (stage, fractions)
    train = [f for s, f in calls if s == "train"]
    assert SMOOTHED in train and any(SMOOTHED < f < 1 for f in train)  # smoothed, then the SAE's own progress
    themes = [f for s, f in calls if s == "themes"]
    assert set(THEME_STEPS.values()) - {THEME_STEPS["sub_themes"]} <= set(themes)
    assert any(THEME_STEPS["themes"] < f < THEME_STEPS["sub_themes"] for f in themes)  # the sub-theme SAE's training


def test_the_runners_stages_lie_end_to_end_on_one_bar():
    from worker.pipeline.analyze import STAGES
    from worker.runner import STAGE_SPAN

    names = list(STAGE_SPAN)
    assert names == ["ingest", *STAGES, "store"]
    spans = list(STAGE_SPAN.values())
    assert spans[0][0] == 0.0 and spans[-1][1] == 1.0
    assert all(lo < hi for lo, hi in spans) and all(a[1] == b[0] for a, b in pairwise(spans))


def test_eta_is_the_time_left_at_the_pace_so_far():
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    now = start + timedelta(seconds=90)
    assert eta_seconds("running", start, 0.6, now) == 60.0  # 90 s for 60 %: 60 s for the other 40 %
    assert eta_seconds("running", start, 0.3, now) == 210.0
    assert eta_seconds("running", start, 0.07, start + timedelta(seconds=1)) == 13.0  # whole seconds (13.29)
    assert eta_seconds("running", start, 1.0, now) == 0.0
    assert eta_seconds("running", start, 0.04, now) is None  # too early to tell
    assert eta_seconds("running", None, 0.5, now) is None
    for status in ("queued", "succeeded", "failed"):
        assert eta_seconds(status, start, 0.5, now) is None


def test_a_running_job_shows_its_stage_progress_and_time_left(service_env):
    from worker.runner import STAGE_SPAN, ingest, set_stage

    client, headers = make_client(), new_key("alice")
    created = upload(client, headers, b"text\ngreat shoes\nslow delivery\nrude staff\n")
    job_id = created.json()["id"]
    queued = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert queued["status"] == "queued" and queued["eta_seconds"] is None
    ingest(job_id)
    set_stage(job_id, "themes", 0.5)
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    lo, hi = STAGE_SPAN["themes"]
    assert job["stage"] == "themes" and job["progress"] == pytest.approx(lo + (hi - lo) / 2)
    assert isinstance(job["eta_seconds"], float) and job["eta_seconds"] >= 0


def test_a_job_that_succeeded_reads_stage_done(service_env):
    from tests.test_theme_edits import run_job

    client, headers = make_client(), new_key("alice")
    job_id, _ = run_job(None)  # ends the job through the worker's own store_results
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert (job["status"], job["stage"], job["progress"], job["eta_seconds"]) == ("succeeded", "done", 1.0, None)
