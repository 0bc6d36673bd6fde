"""Figures on node names (:mod:`worker.pipeline.names`) for the benchmark: junk names, and the fidelity of names
against the old labels (the top three keywords joined by ", ").

Fidelity (arXiv 2502.18469): the AUC of the cosine similarity of a name's embedding to the node's member units
against as many non-member units drawn at random; 0.5 is chance, 1 picks out the members exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from worker.pipeline.names import NodeText, fidelity_auc, junk_reason, sample_non_members, units_count


def junk_names(names: Sequence[str]) -> list[tuple[str, str]]:
    """The junk names with why (:func:`~worker.pipeline.names.junk_reason`), in order."""
    return [(name, reason) for name in names if (reason := junk_reason(name)) is not None]


def mean_fidelity(
    names: Sequence[str],
    label_strings: Sequence[str],
    nodes: Sequence[NodeText],
    unit_vectors,
    encode: Callable[[list[str]], np.ndarray],
    n_negatives: int = 400,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean AUC of the names, mean AUC of the old labels) over the nodes with members, each name and its node's
    label scored on the same members and non-members (at most ``n_negatives`` of each, drawn with ``seed``).
    ``encode`` is called once."""
    if not (len(names) == len(label_strings) == len(nodes)):
        raise ValueError(f"{len(names)} names, {len(label_strings)} labels, {len(nodes)} nodes: give one of each")
    vectors = np.asarray(encode([*names, *label_strings]), dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    n_units = units_count(unit_vectors)
    name_auc, label_auc = [], []
    for i, node in enumerate(nodes):
        rng = np.random.default_rng([seed, i])
        members = np.unique(np.asarray(node.members, dtype=np.int64))
        if len(members) == 0:
            continue
        if len(members) > n_negatives:
            members = np.sort(rng.choice(members, size=n_negatives, replace=False))
        others = sample_non_members(n_units, node.members, n_negatives, rng)
        if len(others) == 0:
            continue
        name_auc.append(fidelity_auc(vectors[i], unit_vectors, members, others))
        label_auc.append(fidelity_auc(vectors[len(names) + i], unit_vectors, members, others))
    if not name_auc:
        return float("nan"), float("nan")
    return float(np.mean(name_auc)), float(np.mean(label_auc))
