"""An incremental update in span mode: reviews of several sentences, each about another subject; the second upload
updates the project's SAE, and the themes keep their ids and their spans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from worker.pipeline.spans import SpanOptions

SUBJECTS = {
    "fit": ["The dress runs small, order a size up.", "It fits small around the waist, size up.",
            "Sizing runs small so I returned it for a larger size.", "Too tight in the hips, it runs a size small."],
    "fabric": ["The fabric is thin and see-through.", "The material feels cheap and scratchy.",
               "Thin fabric that pills after one wash.", "The cotton is flimsy and almost transparent."],
    "delivery": ["Delivery took three weeks to arrive.", "The parcel arrived late and the box was damaged.",
                 "Shipping was slow, it came two weeks late.", "My order was delayed and tracking never updated."],
    "colour": ["The colour is lovely, a deep emerald green.", "Beautiful colour, brighter than the photos.",
               "I love the colour, a rich navy blue.", "Gorgeous colour that looks great in sunlight."],
}  # fmt: skip


def reviews(n: int, seed: int) -> list[str]:
    """``n`` reviews of two or three sentences, each sentence from another subject."""
    rng = np.random.default_rng(seed)
    names = list(SUBJECTS)
    out = []
    for _ in range(n):
        picked = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        out.append(" ".join(str(rng.choice(SUBJECTS[names[p]])) for p in picked))
    return out


def frame(texts: list[str], start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"doc_id": [f"r{start + i}" for i in range(len(texts))], "text": texts, "rating": np.nan,
                         "date": None, "sentiment_score": 0.0, "sentiment_label": "neutral"})  # fmt: skip


def span_members(analysis, rows: int) -> dict[int, set[tuple[int, int]]]:
    """Theme id → (comment row, span index) of its spans among the first ``rows`` comments."""
    spans = analysis.spans
    return {t.id: {(int(spans.doc[u]), int(spans.index[u])) for u in t.unit_rows if spans.doc[u] < rows}
            for t in analysis.themes}  # fmt: skip


@pytest.mark.slow
def test_span_themes_keep_their_ids_across_an_update(tmp_path):
    from dataclasses import replace

    from worker.pipeline.analyze import AnalysisOptions, analyze
    from worker.pipeline.embed_cache import EmbeddingCache
    from worker.pipeline.themes import ThemeOptions

    options = AnalysisOptions(device="cpu", seed=0, backend="torch", n_latents=8, names=False,
                              spans=SpanOptions(whole_words=0), themes=ThemeOptions(span_sentiment_weight=0))  # fmt: skip
    first_texts, later_texts = reviews(60, seed=1), reviews(30, seed=2)
    first = analyze(frame(first_texts), options, cache=EmbeddingCache(tmp_path / "cache"))
    assert len(first.spans) > len(first_texts)  # two or three sentences each: cut into spans
    first.sae.save(tmp_path / "sae")
    previous = {n.id: n.members for n in [*first.categories, *first.sub_themes]}
    updated = analyze(frame(first_texts + later_texts), replace(options, seed=1), cache=EmbeddingCache(tmp_path / "cache"),
                      previous_sae=tmp_path / "sae", previous_nodes=previous)  # fmt: skip
    before, after = span_members(first, 60), span_members(updated, 60)
    kept = [t for t, spans in before.items()
            if spans and len(spans & after.get(t, set())) / len(spans | after.get(t, set())) >= 0.5]  # fmt: skip
    assert len(kept) >= 0.75 * len(before), (before.keys(), after.keys())
    # the new reviews' sentences join the themes of their subjects, and a comment counts once per theme
    new_rows = set(range(60, 90))
    assert any(set(t.members.tolist()) & new_rows for t in updated.themes if t.id in kept)
    for theme in updated.themes:
        assert len(theme.members) == len(set(theme.members.tolist())) <= theme.span_count
    # categories matched to the first analysis's by their members keep their ids; the others get new ones after them
    from worker.pipeline.tree import CATEGORY_ID_BASE, match_ids

    first_ids = {c.id for c in first.categories}
    expected = match_ids([c.members for c in updated.categories], {c.id: c.members for c in first.categories},
                         CATEGORY_ID_BASE, 90)  # fmt: skip
    assert [c.id for c in updated.categories] == expected and first_ids & set(expected)
    assert all(c.id > max(first_ids) for c in updated.categories if c.id not in first_ids)
