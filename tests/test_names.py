"""Node names (worker/pipeline/names.py): junk rules, candidate phrases, fidelity AUC, sibling distinctness,
fallbacks, determinism; with a bag-of-words hashing encoder instead of the model."""

from __future__ import annotations

import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

from bench.names_eval import junk_names, mean_fidelity
from worker.pipeline.names import (
    GENERIC_NAMES,
    NameOptions,
    NodeText,
    auc_rows,
    candidate_phrases,
    fidelity_auc,
    heading,
    interleave,
    junk_reason,
    keyword_names,
    name_nodes,
    sample_non_members,
    stem,
    units_count,
)
from worker.pipeline.themes import DocumentVectors

DIM = 512


def fake_encode(texts: list[str]) -> np.ndarray:
    """Unit-length hashed bags of word stems: texts sharing words are close, as with the model."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z']+", text.lower()):
            out[i, zlib.crc32(stem(word).encode()) % DIM] += 1.0
        out[i, DIM - 1] += 0.1  # never all zero
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return fake_encode(texts)


BAGGAGE = [
    "They lost my bag again!",
    "@united lost my bag at the airport http://t.co/abc",
    "My bag was delayed three days",
    "delayed bag and no response",
    "Lost bag, still waiting",
    "lost baggage claim took forever",
    "delayed baggage is a joke",
    "They lost my bag XXXX",
    "Delayed bag, again",
]
PHONE = [
    "On hold for hours with customer service",
    "customer service kept me on hold for hours",
    "Customer service never answers the phone",
    "I was on hold for 2 hours",
    "customer service is terrible",
    "hung up on me after an hour on hold",
]
SIZE = [
    "Runs very small, size up!",
    "runs small so I had to size up",
    "It runs small. Size up.",
    "Fits true to size",
    "the dress runs small",
]
DEBT = [
    "The debt collector keeps calling me at work",
    "debt collector keeps calling my family",
    "A debt collector keeps calling about a debt I don't owe",
    "collector calls every day",
]


def corpus(groups: list[list[str]]) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """All texts, their vectors, and per group its rows."""
    texts, rows = [], []
    for group in groups:
        rows.append(np.arange(len(texts), len(texts) + len(group)))
        texts.extend(group)
    return texts, fake_encode(texts), rows


# --------------------------------------------------------------------------------------------------------------
# junk_reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Card charged XXXX", "mask"),
        ("Payment on XX/XX", "mask"),
        ("Refund of {$390.00}", "mask"),
        ("Refund {} pending", "mask"),
        ("@united lost bag", "handle"),
        ("Lost bag @delta", "handle"),
        ("http link broken", "url"),
        ("Visit www site", "url"),
        ("Order on amazon.com", "url"),
        ("Waited 2 hours", "bare number"),
        ("Paid $50 fee", "bare number"),
        ("Support 24/7 please", "bare number"),
        ("Of the and", "only stop words"),
        ("It was", "only stop words"),
        ("Bag and bags", "two forms of one word"),
        ("Delay delayed flight", "two forms of one word"),
        ("Size sizing problem", "two forms of one word"),
        ("Baggage", "fewer than 2 words"),
        ("", "fewer than 2 words"),
        ("Lost bag at the airport on a Monday", "more than 6 words"),
        ("Lost the", "function word at an end"),
        ("Of lost bags", "function word at an end"),
        ("Flight was", "function word at an end"),
        ("Card not", "function word at an end"),
        ("Bags up", "function word at an end"),
    ],
)
def test_junk_reason(name: str, reason: str) -> None:
    assert junk_reason(name) == reason


@pytest.mark.parametrize(
    "name",
    ["Lost or delayed baggage", "Debt collector keeps calling", "Runs small", "Size up", "Battery life",
     "No response", "On hold for hours", "Worth the money", "Can't log in", "Too small", "ATM card swallowed",
     "Flight delayed or cancelled", "Top up failed", "Runs true to size"],
)  # fmt: skip
def test_good_names_are_not_junk(name: str) -> None:
    assert junk_reason(name) is None


def test_word_limits_follow_the_options() -> None:
    assert junk_reason("Battery", NameOptions(min_words=1)) is None
    assert junk_reason("Lost or delayed baggage", NameOptions(max_words=3)) == "more than 3 words"


def test_generic_names_are_fine_and_all_different() -> None:
    assert all(junk_reason(name) is None for name in GENERIC_NAMES)
    assert len({frozenset(stem(w.lower()) for w in n.split()) for n in GENERIC_NAMES}) == len(GENERIC_NAMES)


# --------------------------------------------------------------------------------------------------------------
# candidate_phrases


def test_candidates_most_frequent_first() -> None:
    candidates = candidate_phrases(BAGGAGE)
    assert candidates[:2] == ["Lost bag", "Delayed bag"]  # 4 texts (possessive skipped after a verb), then 2
    assert "Delayed baggage" in candidates  # few frequent phrases: phrases of one text fill in


def test_candidates_never_carry_masks_handles_links_or_numbers() -> None:
    texts = ["@united XXXX lost bag http://t.co/x", "lost bag {$20.00} at 10/XX/2020 www.example.com",
             "lost bag on 2 flights", "united xx lost bag"]  # fmt: skip
    for name in candidate_phrases(texts):
        assert junk_reason(name) is None
        assert not re.search(r"xx|@|http|www|\.com|\d|\{", name, re.IGNORECASE), name


def test_candidates_are_two_to_six_words_never_junk() -> None:
    for texts in (BAGGAGE, PHONE, SIZE, DEBT):
        for name in candidate_phrases(texts):
            assert 2 <= len(name.split()) <= 6
            assert junk_reason(name) is None
            assert name[0].isupper() and name[-1].isalnum(), name


def test_candidates_keep_connectors_inside_and_patterns_at_ends() -> None:
    assert "On hold for hours" in candidate_phrases(PHONE)  # "on hold" may begin a phrase, "for" stands inside
    assert "Customer service" in candidate_phrases(PHONE)
    sizes = candidate_phrases(SIZE)
    assert "Runs small" in sizes  # the intensifier is skipped: "runs very small"
    assert "Dress runs" not in candidate_phrases(["the dress runs", "dress runs", "dress runs small"])
    assert "Size up" in sizes  # a particle ends a phrase after a phrasal verb
    assert "Debt collector keeps calling" in candidate_phrases(DEBT)
    assert "No response" in candidate_phrases(["no response at all", "still no response", "No response yet"])
    assert "Worth the money" in candidate_phrases(["not worth the money", "worth the money!", "Worth the money"])
    assert "Soft and color" in candidate_phrases(["soft and the color", "Soft and the color"])  # no article after "and"


def test_particles_end_a_phrase_only_after_their_verbs() -> None:
    candidates = candidate_phrases(["can't log in", "Can't log in again", "tried on in store", "tried on", "top in red",
                                    "top in red", "top on sale", "top on sale"])  # fmt: skip
    assert {"Can't log in", "Tried on"} <= set(candidates)
    assert "Top in" not in candidates and "Top on" not in candidates
    assert "Top on sale" in candidates


def test_candidates_merge_word_forms() -> None:
    candidates = candidate_phrases(["lost bags", "Lost bags again", "lost bag", "they lost bags"])
    assert candidates == ["Lost bags"]  # one phrase (4 texts), written as the texts mostly write it


def test_a_phrase_always_inside_a_longer_one_is_left_out() -> None:
    texts = ["the debt collector keeps calling", "debt collector keeps calling me", "debt collector keeps calling"]
    candidates = candidate_phrases(texts)
    assert candidates[0] == "Debt collector keeps calling"
    assert "Debt collector" not in candidates and "Collector keeps calling" not in candidates


def test_a_phrase_never_seen_whole_is_left_out() -> None:
    texts = ["the tartare is a great starter", "Tartare is great starter!", "great starter", "customer service sucks",
             "customer service sucks", "customer service"]  # fmt: skip
    candidates = candidate_phrases(texts)
    assert "Tartare is great" not in candidates  # always cut off before "starter"
    assert {"Tartare is great starter", "Customer service sucks", "Customer service"} <= set(candidates)


def test_candidates_read_only_the_best_distinct_texts() -> None:
    texts = ["lost bag"] * 10 + ["Lost  bag", "battery life", "battery life"]
    assert candidate_phrases(texts, NameOptions(n_texts=1)) == ["Lost bag"]
    assert candidate_phrases(texts, NameOptions(n_texts=2)) == ["Lost bag", "Battery life"]  # repeats count once
    # one text: its longest phrase (the shorter ones are always inside it)
    assert candidate_phrases(["battery life is short"] * 3 + ["Battery life"], NameOptions(n_texts=1)) == [
        "Battery life is short"]  # fmt: skip


def test_candidates_of_nothing() -> None:
    assert candidate_phrases([]) == []
    assert candidate_phrases(["", "   ", "XXXX", "@united", "!!!", "I am so so"]) == []


def test_rare_phrases_fill_in_when_few_are_frequent() -> None:
    candidates = candidate_phrases(["The waiter spilled soup", "Manager apologised quickly", "lovely garden seating",
                                    "bread basket", "wine list", "dessert menu"])  # fmt: skip
    assert "Waiter spilled soup" in candidates or "Waiter spilled" in candidates
    assert len(candidates) >= 5


def test_heading_keeps_acronyms_and_names_lowers_shouting() -> None:
    forms = {"atm": __import__("collections").Counter({"ATM": 3}),
             "cancelled": __import__("collections").Counter({"CANCELLED": 5}),
             "jetblue": __import__("collections").Counter({"JetBlue": 2, "jetblue": 1})}  # fmt: skip
    assert heading(("atm", "card", "swallowed"), forms) == "ATM card swallowed"
    assert heading(("flight", "cancelled"), forms) == "Flight cancelled"
    assert heading(("love", "jetblue"), forms) == "Love JetBlue"
    assert heading(("i", "lost", "bag")) == "I lost bag"
    names = candidate_phrases(["My ATM card was swallowed", "the ATM card got stuck", "ATM card swallowed"])
    assert "ATM card" in names[0]


def test_interleave_takes_the_best_of_each_list_in_turn() -> None:
    assert interleave([["a1", "a2", "a3"], ["b1"], ["c1", "c2"]]) == ["a1", "b1", "c1", "a2", "c2", "a3"]
    assert interleave([["a1", "a2", "a3"], ["b1"]], n=3) == ["a1", "b1", "a2"]
    assert interleave([]) == []


def test_keyword_names_skip_fragments_and_junk() -> None:
    assert keyword_names(["runs small", "petite", "sizing", "ve", "don", "xxxx"]) == [
        "Runs small", "Petite and sizing"]  # fmt: skip
    assert keyword_names(["bag", "bags"]) == []  # two forms of one word
    assert keyword_names([]) == []


# --------------------------------------------------------------------------------------------------------------
# fidelity


def test_auc_rows_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(size=(3, 20)), rng.normal(size=(3, 30))
    expected = [np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]) for pos, neg in zip(positive, negative)]
    assert np.allclose(auc_rows(positive, negative), expected)
    assert np.isnan(auc_rows(positive[:, :0], negative)).all()


def test_fidelity_auc_perfect_chance_and_reversed() -> None:
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 0, 1, 1, 2]]
    name = np.eye(4, dtype=np.float32)[0]
    assert fidelity_auc(name, vectors, np.array([0, 1, 2]), np.array([3, 4, 5])) == 1.0
    assert fidelity_auc(name, vectors, np.array([3, 4, 5]), np.array([0, 1, 2])) == 0.0
    assert fidelity_auc(name, vectors, np.array([3]), np.array([4, 5])) == 0.5  # ties


def test_fidelity_auc_reads_document_vectors() -> None:
    unique = np.eye(3, dtype=np.float32)
    rows = DocumentVectors(unique, np.array([0, 0, 1, 2, 2]))
    assert units_count(rows) == 5
    assert fidelity_auc(unique[0], rows, np.array([0, 1]), np.array([2, 3, 4])) == 1.0


def test_sample_non_members() -> None:
    rng = np.random.default_rng(0)
    members = np.arange(0, 1000, 3)
    picked = sample_non_members(1000, members, 100, rng)
    assert len(picked) == 100 and len(np.unique(picked)) == 100
    assert not np.isin(picked, members).any()
    assert sorted(sample_non_members(10, np.arange(8), 100, rng)) == [8, 9]  # fewer left than asked
    assert len(sample_non_members(5, np.arange(5), 10, rng)) == 0


# --------------------------------------------------------------------------------------------------------------
# name_nodes


def nodes_of(groups: list[list[str]], siblings: list[int | None] | None = None,
             keywords: list[list[str]] | None = None) -> tuple[list[NodeText], np.ndarray]:  # fmt: skip
    texts, vectors, rows = corpus(groups)
    siblings = siblings or [None] * len(groups)
    keywords = keywords or [[] for _ in groups]
    nodes = [NodeText([texts[r] for r in r_], r_, s, k) for r_, s, k in zip(rows, siblings, keywords)]
    return nodes, vectors


def test_name_nodes_names_each_node_from_its_texts_with_one_encode_call() -> None:
    nodes, vectors = nodes_of([BAGGAGE, PHONE, SIZE, DEBT], siblings=[1, 1, 2, 2])
    encode = CountingEncoder()
    names = name_nodes(nodes, vectors, encode)
    assert len(encode.calls) == 1  # every candidate of every node, batched
    assert len(encode.calls[0]) == len(set(encode.calls[0]))
    assert "bag" in names[0].lower()
    assert "hold" in names[1].lower() or "service" in names[1].lower()
    assert "small" in names[2].lower() or "size" in names[2].lower()
    assert "debt" in names[3].lower() or "collector" in names[3].lower()
    assert junk_names(names) == []


def test_siblings_never_share_a_name() -> None:
    nodes, vectors = nodes_of([BAGGAGE, BAGGAGE, BAGGAGE[:4]], siblings=[7, 7, 7])
    names = name_nodes(nodes, vectors, fake_encode)
    stems = [
        frozenset(stem(w.lower()) for w in n.split() if w.lower() not in {"or", "and", "of", "the"}) for n in names
    ]
    assert len(set(stems)) == 3, names
    assert junk_names(names) == []


def test_same_stems_count_as_the_same_name() -> None:
    """Two siblings whose only phrases are "lost bag" and "lost bags": the second must not be "Lost bags"."""
    nodes, vectors = nodes_of([["lost bag", "lost bag", "lost bag"], ["lost bags", "lost bags", "lost bags"]],
                              siblings=[1, 1], keywords=[["lost bag"], ["baggage", "claim"]])  # fmt: skip
    names = name_nodes(nodes, vectors, fake_encode)
    assert names[0] == "Lost bag"
    assert names[1] == "Baggage and claim"


def test_non_siblings_may_share_a_name() -> None:
    nodes, vectors = nodes_of([BAGGAGE, BAGGAGE], siblings=[1, 2])
    names = name_nodes(nodes, vectors, fake_encode)
    assert names[0] == names[1]


def test_sibling_names_are_pushed_apart() -> None:
    """The larger sibling is named first; the other gets a name of its own."""
    nodes, vectors = nodes_of([BAGGAGE + BAGGAGE[:2], BAGGAGE[::-1]], siblings=[3, 3])
    names = name_nodes(nodes, vectors, fake_encode)
    assert names[0] != names[1]


def test_a_node_may_read_more_texts() -> None:
    """A category reads its own number of texts (taken in turn from its themes): a phrase past the first 40 counts."""
    texts = [f"lost bag number {i}" for i in range(40)] + ["battery life"] * 3 + ["battery life is short"] * 3
    texts = texts + [f"battery life {w}" for w in ("poor", "bad", "awful", "weak", "terrible")]
    members = np.arange(len(texts))
    vectors = fake_encode(texts)
    encode = CountingEncoder()
    name_nodes([NodeText(texts, members, None, [], n_texts=60)], vectors, encode)
    assert "Battery life" in encode.calls[0]
    encode = CountingEncoder()
    name_nodes([NodeText(texts, members, None, [])], vectors, encode)
    assert "Battery life" not in encode.calls[0]


def test_fallback_from_keywords_then_generic() -> None:
    nodes, vectors = nodes_of([["!!!", "???"], ["...", "@@"], ["XXXX"]], siblings=[1, 1, 1],
                              keywords=[["refund", "delay"], [], []])  # fmt: skip
    names = name_nodes(nodes, vectors, fake_encode)
    assert names[0] == "Refund and delay"
    assert names[1] in GENERIC_NAMES and names[2] in GENERIC_NAMES and names[1] != names[2]
    assert junk_names(names) == []


def test_nodes_without_members_or_texts_get_names() -> None:
    nodes = [NodeText([], np.zeros(0, dtype=int), None, ["battery life"]), NodeText(["lost bag"] * 3, np.array([0]))]
    names = name_nodes(nodes, fake_encode(["lost bag", "battery"]), fake_encode)
    assert names == ["Battery life", "Lost bag"]
    assert name_nodes([], np.zeros((0, DIM)), fake_encode) == []


def test_name_nodes_is_deterministic() -> None:
    nodes, vectors = nodes_of([BAGGAGE, PHONE, SIZE, DEBT, BAGGAGE + PHONE], siblings=[1, 1, 1, 1, 2])
    first = name_nodes(nodes, vectors, fake_encode)
    assert name_nodes(nodes, vectors, fake_encode) == first
    assert name_nodes(nodes, vectors, fake_encode, NameOptions(seed=0)) == first


def test_names_pick_the_phrase_that_tells_members_apart() -> None:
    """A phrase both siblings use as often loses to one only this node's members use."""
    shared = "customer service"
    a = [f"{shared}: lost bag", f"lost bag, {shared}", "lost bag", f"{shared}, slow"]
    b = [f"{shared}: refund pending", f"refund pending, {shared}", "refund pending", f"{shared}, slow"]
    nodes, vectors = nodes_of([a, b], siblings=[1, 1])
    assert name_nodes(nodes, vectors, fake_encode) == ["Lost bag", "Refund pending"]


def test_mean_fidelity_of_names_and_labels() -> None:
    nodes, vectors = nodes_of([BAGGAGE, PHONE, SIZE, DEBT])
    names = ["Lost bag", "On hold for hours", "Runs small", "Debt collector keeps calling"]
    labels = ["xyz, qqq, zzz"] * 4
    name_auc, label_auc = mean_fidelity(names, labels, nodes, vectors, fake_encode)
    assert name_auc > 0.8 and name_auc > label_auc
    with pytest.raises(ValueError):
        mean_fidelity(names, labels[:2], nodes, vectors, fake_encode)


def test_junk_names() -> None:
    assert junk_names(["Lost bag", "@united lost", "Bag", "Lost bags and bag"]) == [
        ("@united lost", "handle"),
        ("Bag", "fewer than 2 words"),
        ("Lost bags and bag", "two forms of one word"),
    ]


def test_names_module_loads_no_torch() -> None:
    code = "import sys, worker.pipeline.names; assert not {'torch', 'sentence_transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
