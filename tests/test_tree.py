"""Tree stage: categories over the themes, sub-themes under them, stable ids, and the invariants of the tree."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from worker.pipeline.themes import Theme, ThemeOptions, Units, describe_levels
from worker.pipeline.tree import (
    CATEGORY_ID_BASE,
    SUB_THEME_ID_BASE,
    TreeOptions,
    assign_categories,
    build_tree,
    count_categories,
    level_of_id,
    match_ids,
    sub_theme_nodes,
)

FAST = TreeOptions(n_runs=5)


def _theme(theme_id: int, rows, activation: float = 1.0) -> Theme:
    rows = np.asarray(rows)
    return Theme(id=theme_id, features=[theme_id], members=rows, activations=np.full(len(rows), activation))


def _subjects(n_subjects: int = 3, per_subject: int = 4, per_theme: int = 5, seed: int = 0):
    """Themes in ``n_subjects`` clear subjects: each theme's units point near its subject's direction."""
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(32, n_subjects)))[0].T
    themes, inputs = [], []
    for s in range(n_subjects):
        for t in range(per_subject):
            start = len(inputs)
            for _ in range(per_theme):
                inputs.append(axes[s] + 0.15 * rng.normal(size=32))
            themes.append(_theme(10 * s + t, range(start, start + per_theme)))
    inputs = np.asarray(inputs, dtype=np.float32)
    return themes, inputs / np.linalg.norm(inputs, axis=1, keepdims=True)


def test_level_of_an_id():
    assert [level_of_id(i) for i in (0, 99_999, CATEGORY_ID_BASE + 1, SUB_THEME_ID_BASE + 3)] == [2, 2, 1, 3]


def test_the_number_of_categories_grows_with_the_square_root_of_the_themes():
    assert [count_categories(n) for n in (1, 2, 12, 27, 75, 300, 5000)] == [1, 2, 2, 3, 5, 10, 15]
    assert count_categories(300, TreeOptions(max_categories=8)) == 8


def test_categories_hold_across_seeds_on_clear_subjects():
    themes, inputs = _subjects(n_subjects=3, per_subject=9)
    n = len(inputs)
    runs = [assign_categories(themes, inputs, np.arange(n), TreeOptions(seed=seed)) for seed in (0, 1, 2)]
    subject = np.array([t.id // 10 for t in themes])
    for labels in runs:  # each category is one subject
        assert len(set(labels)) == 3 and all(len(set(subject[labels == c])) == 1 for c in set(labels))


def test_every_theme_sits_under_one_category_holding_all_its_members():
    themes, inputs = _subjects(per_subject=9)
    n = len(inputs)
    tree = build_tree(themes, inputs, np.arange(n), n)
    assert len(tree.categories) == 3
    assert sorted(c.id for c in tree.categories) == [CATEGORY_ID_BASE + i for i in (1, 2, 3)]
    children = sorted(child for c in tree.categories for child in c.children)
    assert children == sorted(t.id for t in themes)  # each theme under exactly one category
    by_id = {c.id: c for c in tree.categories}
    for theme in tree.themes:
        category = by_id[theme.parent]
        assert theme.id in category.children and theme.level == 2
        assert set(theme.members.tolist()) <= set(category.members.tolist())
    for category in tree.categories:
        # one subject per category: its children are the themes 10 s … 10 s + 3
        assert len({child // 10 for child in category.children}) == 1 and len(category.children) == 9
        assert category.level == 1 and category.parent is None
        assert category.features == sorted(category.children)


def test_category_members_are_the_union_of_their_themes_with_the_highest_activation():
    themes, inputs = _subjects(n_subjects=2, per_subject=2)
    themes[1] = _theme(1, [3, 4, 5, 6, 7], activation=0.5)  # shares rows 3 and 4 with theme 0
    n = len(inputs)
    tree = build_tree(themes, inputs, np.arange(n), n, options=FAST)
    first = next(c for c in tree.categories if 0 in c.children)
    assert first.members.tolist() == list(range(8)) and first.activations[3] == 1.0


def test_sub_themes_sit_under_the_theme_carrying_most_of_their_units_and_inside_it():
    themes = [_theme(3, range(20)), _theme(8, range(20, 40))]
    fine = [
        _theme(0, range(8)),  # inside theme 3
        _theme(1, [17, 18, 19, 20, 21, 22, 23, 24]),  # mostly theme 8: cut to its part of it
        _theme(2, range(20, 40)),  # theme 8 itself: says nothing it does not
        _theme(5, [45, 46, 47]),  # in no theme
        _theme(6, [9, 10]),  # too small
    ]
    subs = sub_theme_nodes(fine, themes, owner=None, n_units=50, min_size=3)
    assert [(s.parent, s.members.tolist()) for s in subs] == [(3, list(range(8))), (8, [20, 21, 22, 23, 24])]
    assert all(s.level == 3 for s in subs)
    assert sub_theme_nodes(fine, [], owner=None, n_units=50, min_size=3) == []


def test_sub_themes_over_spans_lift_to_comments():
    owner = np.repeat(np.arange(10), 2)  # 10 comments of 2 spans
    theme = Theme(id=4, features=[4], members=np.arange(10), activations=np.ones(10), spans=np.arange(20),
                  span_activations=np.ones(20))  # fmt: skip
    fine = [_theme(1, [0, 2, 4, 6])]
    [sub] = sub_theme_nodes(fine, [theme], owner, n_units=20, min_size=3)
    assert sub.members.tolist() == [0, 1, 2, 3] and sub.spans.tolist() == [0, 2, 4, 6] and sub.parent == 4


def test_the_tree_links_parents_and_children_both_ways():
    themes, inputs = _subjects()
    n = len(inputs)
    fine = [_theme(100, [0, 1]), _theme(101, [20, 21, 22])]
    tree = build_tree(themes, inputs, np.arange(n), n, fine=fine, min_size=2, options=FAST)
    assert [s.id for s in tree.sub_themes] == [SUB_THEME_ID_BASE + 2, SUB_THEME_ID_BASE + 1]  # new ids: largest first
    by_id = {t.id: t for t in tree.themes}
    for sub in tree.sub_themes:
        assert sub.id in by_id[sub.parent].children
        assert set(sub.members.tolist()) <= set(by_id[sub.parent].members.tolist())
    assert {t.id for t in tree.themes if t.children} == {sub.parent for sub in tree.sub_themes}
    assert len(tree.nodes) == len(tree.categories) + len(tree.themes) + len(tree.sub_themes)


def test_match_ids_keeps_the_previous_ids_of_matching_nodes_and_numbers_new_ones_after_them():
    previous = {CATEGORY_ID_BASE + 1: np.arange(0, 10), CATEGORY_ID_BASE + 4: np.arange(10, 20)}
    nodes = [np.arange(11, 22), np.arange(30, 40), np.arange(0, 9), np.arange(40, 45)]
    ids = match_ids(nodes, previous, CATEGORY_ID_BASE, n_docs=50)
    assert ids == [CATEGORY_ID_BASE + 4, CATEGORY_ID_BASE + 5, CATEGORY_ID_BASE + 1, CATEGORY_ID_BASE + 6]
    assert match_ids(nodes[:2], {}, SUB_THEME_ID_BASE, n_docs=50) == [SUB_THEME_ID_BASE + 1, SUB_THEME_ID_BASE + 2]
    # a match below the Jaccard floor is not a match
    assert match_ids([np.arange(0, 40)], previous, CATEGORY_ID_BASE, 50, min_jaccard=0.3) == [CATEGORY_ID_BASE + 5]


def test_category_ids_hold_across_an_update_with_more_comments():
    themes, inputs = _subjects(per_subject=9)
    n = len(inputs)
    first = build_tree(themes, inputs, np.arange(n), n, options=FAST)
    previous = {c.id: c.members for c in first.categories}
    _, more_inputs = _subjects(per_subject=9, seed=1)  # the same subjects, new comments after the first ones
    shifted = [_theme(t.id, np.concatenate([t.members, t.members + n])) for t in themes]
    both = np.concatenate([inputs, more_inputs])
    second = build_tree(shifted, both, np.arange(2 * n), 2 * n, previous=previous, options=replace(FAST, seed=3))
    assert {tuple(c.children): c.id for c in second.categories} == {tuple(c.children): c.id for c in first.categories}


def test_describe_levels_counts_keywords_among_the_nodes_of_one_level():
    texts = [f"late parcel delivery {i}" for i in range(6)] + [f"runs small size up {i}" for i in range(6)]
    docs = pd.DataFrame({"doc_id": [str(i) for i in range(12)], "text": texts, "sentiment_score": 0.0,
                         "sentiment_label": "neutral", "rating": np.nan})  # fmt: skip
    units = Units.of_documents(docs, np.eye(12, dtype=np.float32))
    delivery = Theme(id=CATEGORY_ID_BASE + 1, features=[], members=np.arange(6), activations=np.ones(6), level=1)
    sizing = Theme(id=CATEGORY_ID_BASE + 2, features=[], members=np.arange(6, 12), activations=np.ones(6), level=1)
    late = Theme(id=SUB_THEME_ID_BASE + 1, features=[], members=np.arange(3), activations=np.ones(3), level=3)
    described = describe_levels([delivery, sizing, late], docs, units, ThemeOptions(min_size=2))
    assert [n.id for n in described] == [delivery.id, sizing.id, late.id]
    assert "delivery" in delivery.keywords and any("small" in k for k in sizing.keywords)
    assert late.keywords and len(delivery.examples) == 5 and delivery.sentiment["neutral"] == 1.0


def test_categories_are_named_by_what_their_themes_share_and_no_node_repeats_its_parent():
    from worker.pipeline.analyze import distinct_from_parents

    def node(node_id, level, parent=None, children=(), keywords=(), size=5):
        return Theme(id=node_id, features=[], members=np.arange(size), activations=np.ones(size), level=level,
                     parent=parent, children=list(children), keywords=list(keywords))  # fmt: skip

    service = node(CATEGORY_ID_BASE + 1, 1, children=[3], keywords=["service", "great", "staff", "table"])
    vague = node(CATEGORY_ID_BASE + 2, 1, children=[4, 5], keywords=["thanks", "honestly", "just know", "great"])
    bags = node(CATEGORY_ID_BASE + 3, 1, keywords=["bag", "bags", "luggage", "baggage"])
    waiter = node(3, 2, service.id, [SUB_THEME_ID_BASE + 1], keywords=["waiter", "rude"])
    parcel = node(4, 2, vague.id, keywords=["parcel", "late"], size=9)
    price = node(5, 2, vague.id, keywords=["price", "value"], size=7)
    rude = node(SUB_THEME_ID_BASE + 1, 3, 3, keywords=["rude waiter", "ignored", "waited"])
    nodes = [service, vague, bags, waiter, parcel, price, rude]
    names = ["Crunchy tuna", "Worst sushi", "Baggage claim", "Rude waiter", "Parcel came late", "Good value",
             "Rude waiter"]  # fmt: skip
    distinct_from_parents(nodes, names)
    assert names[0] == "Service and staff"  # one theme's phrase: its subject words (no sentiment words) instead
    assert names[1] == "Parcel and price"  # nothing left of its own keywords: its largest themes' first ones
    assert names[2] == "Baggage claim"  # a phrase on its keywords' subject stays
    assert names[3:6] == ["Rude waiter", "Parcel came late", "Good value"]
    assert names[6] != "Rude waiter" and names[6]  # not its parent's name again
