"""Loaders for the labelled data sets in ``../shared/data`` and for any labelled CSV (the data of ``python -m bench
quality``, ``sentiment``, ``theme-sentiment``, ``incremental`` and ``perf``), and their cached embeddings.

Every loader returns a :class:`LabelledSet`: texts, gold labels per text (a list: several for SemEval), and where
the source has it a 3-class sentiment per text (``negative`` / ``neutral`` / ``positive``) and a rating.
"""

from __future__ import annotations

import html
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]  # the repository
DATASETS = ("banking77", "airline", "airline-all", "semeval", "semeval16-restaurants", "semeval16-laptops", "clothing")
#: Clothing reviews are subsampled (fixed seed) to keep CPU embedding time reasonable.
CLOTHING_SAMPLE = 4_000
SAMPLE_SEED = 0


@dataclass
class LabelledSet:
    name: str
    texts: list[str]
    labels: list[list[str]]  # gold labels per text ([] = unlabelled)
    sentiment: list[str | None] = field(default_factory=list)  # per text, or empty
    ratings: np.ndarray | None = None
    aspect_polarity: list[dict[str, str]] | None = None  # SemEval: category -> polarity per text
    note: str = ""

    @property
    def multi_label(self) -> bool:
        return any(len(ls) > 1 for ls in self.labels)


def data_dir() -> Path:
    """``FEEDBACK_THEMES_BENCH_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("FEEDBACK_THEMES_BENCH_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"benchmark data not found: {path} (set FEEDBACK_THEMES_BENCH_DATA)")
    return path


def load(name: str, **kwargs) -> LabelledSet:
    loaders = {"banking77": banking77, "airline": airline, "airline-all": airline_all, "semeval": semeval,
               "semeval16-restaurants": lambda **kw: semeval_reviews("restaurants", **kw),
               "semeval16-laptops": lambda **kw: semeval_reviews("laptops", **kw), "clothing": clothing}  # fmt: skip
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
    return loaders[name](**kwargs)


def banking77(split: str = "test") -> LabelledSet:
    df = pd.read_csv(_need(data_dir() / "banking77" / f"{split}.csv"))
    return LabelledSet("banking77", df["text"].astype(str).tolist(), [[c] for c in df["category"]],
                       note=f"Banking77 {split}: {len(df)} queries")  # fmt: skip


def _airline_frame() -> pd.DataFrame:
    df = pd.read_csv(_need(data_dir() / "twitter_airline_sentiment" / "Tweets.csv"))
    df = df.drop_duplicates("tweet_id")
    df["text"] = df["text"].astype(str).map(html.unescape)
    return df


def airline() -> LabelledSet:
    """Negative tweets with a known ``negativereason`` (``Can't Tell`` dropped), duplicate tweet ids dropped."""
    df = _airline_frame()
    df = df[(df["airline_sentiment"] == "negative") & df["negativereason"].notna() & (df["negativereason"] != "Can't Tell")]
    return LabelledSet("airline", df["text"].tolist(), [[r] for r in df["negativereason"]],
                       sentiment=df["airline_sentiment"].tolist(),
                       note=f"airline negative tweets with a reason other than Can't Tell: {len(df)}")  # fmt: skip


def airline_sentiment() -> LabelledSet:
    """All (deduplicated) tweets with ``airline_sentiment``; labels = negativereason where present."""
    df = _airline_frame()
    labels = [[r] if isinstance(r, str) and r != "Can't Tell" else [] for r in df["negativereason"]]
    return LabelledSet("airline", df["text"].tolist(), labels, sentiment=df["airline_sentiment"].tolist(),
                       note=f"all airline tweets: {len(df)}")  # fmt: skip


def airline_all() -> LabelledSet:
    """Every (deduplicated) tweet, positive and neutral ones too; gold: ``negativereason`` where one is given
    (``Can't Tell`` left out), so themes are scored on the nine reasons among all the chatter around them."""
    data = airline_sentiment()
    data.note = f"all airline tweets, gold = negativereason where given: {len(data.texts)}"
    return data


def rating_to_sentiment(r: float) -> str | None:
    if r is None or np.isnan(r):
        return None
    return "negative" if r <= 2 else ("neutral" if r == 3 else "positive")


def clothing(sample: int | None = CLOTHING_SAMPLE, seed: int = SAMPLE_SEED) -> LabelledSet:
    """Reviews with text and a department; a fixed-seed sample of ``sample`` rows (None: all)."""
    df = pd.read_csv(_need(data_dir() / "womens_clothing_reviews" / "reviews.csv"))
    df = df[df["Review Text"].notna() & df["Department Name"].notna()]
    df = df[df["Review Text"].astype(str).str.strip() != ""]
    if sample is not None and sample < len(df):
        df = df.sample(n=sample, random_state=seed)
    texts = df["Review Text"].astype(str).map(html.unescape).tolist()
    ratings = df["Rating"].to_numpy(dtype=float)
    return LabelledSet("clothing", texts, [[d] for d in df["Department Name"]],
                       sentiment=[rating_to_sentiment(r) for r in ratings], ratings=ratings,
                       note=f"clothing reviews with text: fixed-seed sample of {len(df)} (seed {seed})")  # fmt: skip


def semeval(file: str = "Restaurants_Train_v2.xml") -> LabelledSet:
    """SemEval 2014 restaurants: aspect categories per sentence (multi-label), polarity per category.

    The per-sentence sentiment is the polarity all its categories agree on (``conflict`` and mixed sentences:
    ``None``, left out of sentiment accuracy)."""
    root = ET.parse(_need(data_dir() / "semeval_absa" / file)).getroot()
    texts, labels, pols, sent = [], [], [], []
    for s in root.iter("sentence"):
        text = (s.findtext("text") or "").strip()
        if not text:
            continue
        cats = {c.get("category"): c.get("polarity") for c in s.iter("aspectCategory")}
        texts.append(text)
        labels.append(sorted(cats))
        pols.append(cats)
        distinct = set(cats.values())
        sent.append(distinct.pop() if len(distinct) == 1 and "conflict" not in distinct else None)
    return LabelledSet("semeval", texts, labels, sentiment=sent, aspect_polarity=pols,
                       note=f"SemEval 2014 restaurants (train): {len(texts)} sentences, multi-label categories")  # fmt: skip


#: SemEval 2015/16 files with one polarity per opinion: sentiment-only sets (held out from the lexicon's design).
ABSA_SENTIMENT_FILES = {"laptops": "ABSA16_Laptops_Train_SB1_v2.xml", "restaurants16": "ABSA16_Restaurants_Train_SB1_v2.xml",
                        "hotels": "ABSA15_Hotels_Test.xml"}  # fmt: skip


def absa_sentiment(name: str) -> LabelledSet:
    """Sentences of a SemEval 2015/16 file whose opinions all share one polarity (conflict and mixed left out)."""
    root = ET.parse(_need(data_dir() / "semeval_absa" / ABSA_SENTIMENT_FILES[name])).getroot()
    texts, sent = [], []
    for s in root.iter("sentence"):
        polarities = {o.get("polarity") for o in s.iter("Opinion")}
        text = (s.findtext("text") or "").strip()
        if text and len(polarities) == 1 and "conflict" not in polarities:
            texts.append(text)
            sent.append(polarities.pop())
    return LabelledSet(name, texts, [[] for _ in texts], sentiment=sent,
                       note=f"SemEval {ABSA_SENTIMENT_FILES[name]}: {len(texts)} sentences of one polarity")  # fmt: skip


#: SemEval 2016 subtask-1 files of whole reviews (sentences grouped by review id).
SEMEVAL16_REVIEW_FILES = {"restaurants": "ABSA16_Restaurants_Train_SB1_v2.xml", "laptops": "ABSA16_Laptops_Train_SB1_v2.xml"}


def semeval_reviews(domain: str = "restaurants") -> LabelledSet:
    """SemEval 2016 reviews rebuilt whole: each review's sentences joined by a space. Gold labels: the set of
    entities (the ``ENTITY`` of ``ENTITY#ATTRIBUTE``) its opinions name; ``aspect_polarity``: per review and entity
    the most common polarity of that entity's opinions in the review (a tie: the first opinion's)."""
    root = ET.parse(_need(data_dir() / "semeval_absa" / SEMEVAL16_REVIEW_FILES[domain])).getroot()
    texts, labels, polarity = [], [], []
    for review in root.iter("Review"):
        sentences = [(s.findtext("text") or "").strip() for s in review.iter("sentence")]
        text = " ".join(t for t in sentences if t)
        if not text:
            continue
        seen: dict[str, list[str]] = {}
        for opinion in review.iter("Opinion"):
            seen.setdefault(opinion.get("category", "").split("#")[0], []).append(opinion.get("polarity", ""))
        texts.append(text)
        labels.append(sorted(seen))
        polarity.append({e: max(p, key=p.count) for e, p in seen.items()})  # max keeps the first of a tie
    return LabelledSet(f"semeval16-{domain}", texts, labels, aspect_polarity=polarity,
                       note=f"SemEval 2016 {domain} (SB1 train) as whole reviews: {len(texts)} reviews, "
                            f"gold = the entities each review names")  # fmt: skip


def from_csv(path: str | Path, text_column: str, label_column: str, label_sep: str | None = None,
             sentiment_column: str | None = None) -> LabelledSet:  # fmt: skip
    df = pd.read_csv(path)
    for col in (text_column, label_column):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in {path}; columns: {', '.join(map(str, df.columns))}")
    df = df[df[text_column].notna()]
    df = df[df[text_column].astype(str).str.strip() != ""]
    labels = []
    for value in df[label_column]:
        if not isinstance(value, str) or not value.strip():
            labels.append([] if not isinstance(value, (int, float)) or pd.isna(value) else [str(value)])
        elif label_sep:
            labels.append(sorted({p.strip() for p in value.split(label_sep) if p.strip()}))
        else:
            labels.append([value.strip()])
    sentiment = df[sentiment_column].astype(str).tolist() if sentiment_column else []
    return LabelledSet(Path(path).stem, df[text_column].astype(str).tolist(), labels, sentiment=sentiment,
                       note=f"{path}: {len(df)} rows")  # fmt: skip


def embed(texts: list[str], cache_dir: str | Path | None = None, model: str | None = None) -> np.ndarray:
    """MiniLM embeddings (unit rows), one per text, through an on-disk cache (default ``data/bench-cache``)."""
    from worker.pipeline.defaults import DEFAULT_MODEL
    from worker.pipeline.embed import embed_texts, unique_texts
    from worker.pipeline.embed_cache import EmbeddingCache

    model = model or DEFAULT_MODEL
    cache_dir = Path(cache_dir) if cache_dir else ROOT / "data" / "bench-cache"
    unique, inverse = unique_texts(texts)
    # Plain torch float32 MiniLM, whatever the embedding backend setting: every system gets the same vectors,
    # and the cache keeps them under the bare model name.
    cache = EmbeddingCache(cache_dir)
    try:
        vectors, _ = embed_texts(unique, model, device="cpu", batch_size=64, cache=cache, backend="torch")
    finally:
        cache.close()
    return vectors[inverse]
