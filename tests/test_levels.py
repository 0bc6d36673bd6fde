"""Levels stage: broader groups from a half-size SAE, sub-themes from a double-size SAE."""

from __future__ import annotations

import numpy as np

from worker.pipeline.levels import (
    LevelOptions,
    broader_groups,
    level_groups,
    level_size,
    sub_themes,
    train_level,  # fmt: skip
)
from worker.pipeline.themes import Theme


def _theme(theme_id: int, rows) -> Theme:
    rows = np.asarray(rows)
    return Theme(id=theme_id, features=[theme_id], members=rows, activations=np.ones(len(rows)))


def test_level_size_is_a_multiple_of_the_main_size_and_at_least_two():
    assert level_size(128, 0.5) == 64 and level_size(128, 2.0) == 256 and level_size(3, 0.5) == 2


def test_broader_groups_list_the_themes_mostly_inside_and_skip_near_duplicates():
    themes = [_theme(4, range(0, 10)), _theme(9, range(10, 20)), _theme(12, range(20, 30))]
    coarse = [
        _theme(0, range(0, 21)),  # themes 4 and 9 whole, one member of 12
        _theme(1, range(20, 30)),  # theme 12 itself: not shown again
        _theme(2, [5, 25]),  # no theme half inside: the one it overlaps most (the first of the tie)
        _theme(3, [40, 41]),  # outside every theme
    ]
    groups = broader_groups(coarse, themes, shown=themes, n_docs=50)
    assert [g.themes for g in groups] == [[4, 9], [4]]
    first = groups[0]
    assert first.level == 2 and first.kind == "broader" and first.features == [] and first.size == 21


def test_broader_groups_skip_a_group_equal_to_one_already_shown():
    themes = [_theme(1, range(0, 10)), _theme(2, range(10, 20))]
    union = Theme(id=1, features=[1, 2], members=np.arange(20), activations=np.ones(20), themes=[1, 2], level=2)
    assert broader_groups([_theme(0, range(0, 20))], themes, shown=[*themes, union], n_docs=20) == []


def test_sub_themes_sit_under_the_theme_holding_most_of_their_members():
    themes = [_theme(3, range(0, 20)), _theme(8, range(20, 40))]
    fine = [
        _theme(0, range(0, 8)),  # inside theme 3
        _theme(1, [18, 19, 20, 21, 22]),  # mostly theme 8
        _theme(2, range(20, 40)),  # theme 8 itself: dropped
        _theme(5, [45, 46]),  # in no theme: dropped
    ]
    subs = sub_themes(fine, themes, n_docs=50)
    assert [(s.themes, s.level, s.kind) for s in subs] == [([3], 1, "sub_theme"), ([8], 1, "sub_theme")]
    assert subs[0].members.tolist() == list(range(8)) and subs[1].size == 5
    assert sub_themes(fine, [], n_docs=50) == []


def test_train_level_uses_a_seeded_sample_of_at_most_max_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    sae = train_level(X, 6, LevelOptions(max_rows=100, seed=1))
    assert sae.n_latents_ == 6 and sae.metrics_["n_samples"] == 100
    again = train_level(X, 6, LevelOptions(max_rows=100, seed=1))
    np.testing.assert_array_equal(sae.model_.W_dec.detach().numpy(), again.model_.W_dec.detach().numpy())


def test_level_groups_on_clusters_within_clusters():
    """Four broad subjects of two tight sub-subjects each: the double-size SAE finds sub-themes under the themes,
    every group names themes that exist, and documents map through ``inverse`` (duplicate texts share a row)."""
    from worker.pipeline import train
    from worker.pipeline.themes import build_themes

    rng = np.random.default_rng(0)
    broad = rng.normal(size=(4, 24))
    fine = broad[np.repeat(np.arange(4), 2)] + 0.6 * rng.normal(size=(8, 24))
    labels = np.repeat(np.arange(8), 40)
    X = fine[labels] + 0.15 * rng.normal(size=(len(labels), 24))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    inverse = np.concatenate([np.arange(len(X)), [0, 1]])  # two duplicate documents at the end
    sae = train.train_sae(X, n_latents=4, k=1, seed=0, device="cpu")
    themes = build_themes(train.activations(sae, X)[inverse], sae.model_.W_dec.detach().numpy())
    groups = level_groups(X, inverse, 4, themes, themes, LevelOptions(seed=0))
    ids = {t.id for t in themes}
    subs = [g for g in groups if g.kind == "sub_theme"]
    assert subs and all(len(g.themes) == 1 and g.themes[0] in ids for g in subs)
    assert all(g.level == 2 and set(g.themes) <= ids for g in groups if g.kind == "broader")
    assert all(g.members.max() < len(inverse) for g in groups)
    # a sub-theme is a tight sub-subject: most of its members share one fine label
    doc_labels = labels[inverse]
    purity = [np.bincount(doc_labels[g.members]).max() / g.size for g in subs]
    assert np.mean(purity) > 0.8
    assert level_groups(X, inverse, 4, themes, themes, LevelOptions(broader=None, finer=None)) == []
