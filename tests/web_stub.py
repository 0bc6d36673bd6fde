"""A stubbed ``/v1`` API for browser tests of the web page: Playwright routes serve the page's own files (with the
service's security headers, so its strict Content-Security-Policy is in force) and these answers, no service running.

Two projects, listed by ``/v1/projects``:

- ``p1`` "Shop": the small one (200 comments, no dates, no members): categories 1000001 (a hostile name; themes 3
  and 5, theme 3 with sub-themes 2000001 and 2000002) and 1000002 (theme 4), and a hidden category 1000003 shown only
  with ``include_hidden``; segment ``Channel=app`` (``SEGMENT_QUERY``) shrinks the themes list.
- ``p2`` "Airline (large)": 14,640 comments dated over 8 weeks (Mondays 2015-02-02 … 2015-03-23), generated
  deterministically: 12 categories (1000001…, one holding 60 themes), 200 themes (1…200, sizes descending with a long
  tail; theme 200 hidden), 60 sub-themes (2000001…, three under each of themes 1…20), ratings and impact (``StubApi(
  "p2-no-ratings")``: none anywhere), members (up to 40 a node, 20 a page), trends, alerts, metadata columns
  (airline, channel, tweet_location, fare), segment filters, compare, a node's share per value of a column.

The hostile battery (``HOSTILE_BATTERY``): markup, spreadsheet formulas, a 10,000-character comment, right-to-left
text, emoji sequences and already-escaped entities, each to be shown exactly as typed and never run. In p2 they are the
names of a category, themes and sub-themes (``HOSTILE_NAMED``: node id → string), the keywords of theme 10, the title
and examples of alert 41, and comments (doc ids ``HOSTILE_DOCS``) that are the first members and the examples of
category 1000001, theme 1 and sub-theme 2000001. ``HOSTILE_NODES`` maps each string to every node carrying it
anywhere (name, keywords, member or example text).

``StubApi.answer(method, path, query, body)`` answers a request as ``(status, JSON value)`` (a report's CSV: a
string) and records it (``queries``: every /v1 request's (method, path, query); ``patches``: (node id, body) of
every PATCH; ``posts``: (path, body) of every POST, an upload's file as its filename and size); ``StubApi.handle`` is
the Playwright route handler; ``open_stub_project`` opens a page with the key entered and a project opened.
"""

from __future__ import annotations

import base64
import json
import random
import re
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

__all__ = ["ALERT", "ARTIFACTS", "CHANNEL", "HOSTILE", "HOSTILE_ALERT", "HOSTILE_BATTERY", "HOSTILE_CARRIERS",
           "HOSTILE_DOCS", "HOSTILE_KEYWORDS_NODE", "HOSTILE_NAMED", "HOSTILE_NODES", "JOB_ID", "KINDS", "LONG_COMMENT",
           "P2", "PROJECT", "SEGMENT_QUERY", "STUB_ORIGIN", "StubApi", "open_stub_project"]  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
STUB_ORIGIN = "http://page.test"
KINDS = ("default", "p1", "p2", "p2-no-ratings")  # every kind serves both projects; the last one without ratings
JOB_ID = "j9"  # the id an upload gets

# ---------------------------------------------------------------- p1: the small project

HOSTILE = '<img src=x onerror="window.__xss=3">[b]Delivery[/b] & <i>co</i>'


def _record(node_id: int, level: int, name: str, size: int, mood: float, children: tuple = ()) -> dict:
    """A node's full record as the API gives it (``/themes/{id}``, ``/nodes/{id}``); its label is keywords-like, so
    that a page showing labels instead of names fails."""
    return {"id": node_id, "level": level, "name": name, "label": f"kw{node_id}, other",
            "keywords": [f"kw{node_id}", "x"], "size": size, "share": size / 200, "span_count": size, "cohesion": 0.6,
            "children": list(children), "sentiment": {"mean": mood, "negative": 0.2, "neutral": 0.3, "positive": 0.5},
            "rating": {"mean": 3.5, "count": size}, "examples": [], "features": [], "impact": None, "emerging": False,
            "hidden": False, "merged": []}  # fmt: skip


def _compact(record: dict, children: list[dict], emerging: bool | None = None) -> dict:
    """The ``/tree`` form of a node (``emerging``: instead of the record's flag)."""
    return {"id": record["id"], "level": record["level"], "name": record["name"], "keywords": record["keywords"][:5],
            "size": record["size"], "share": record["share"], "sentiment_mean": record["sentiment"]["mean"],
            "rating_mean": (record["rating"] or {}).get("mean"), "impact": (record["impact"] or {}).get("coef"),
            "emerging": bool(record["emerging"]) if emerging is None else emerging, "children": children}  # fmt: skip


CHANNEL = {"name": "Channel", "type": "category", "distinct_values": 2, "filled": 200, "segment": True,
           "values": [{"value": "web", "count": 160}, {"value": "app", "count": 40}]}  # fmt: skip
NOTE = {"name": "Note", "type": "text", "distinct_values": 5000, "filled": 9, "segment": False}
PROJECT = {"id": "p1", "name": "Shop", "n_documents": 200, "n_themes": 3, "created_at": "2026-11-30T11:00:00Z",
           "current_job_id": "j2", "jobs": 2,
           "columns": [{k: v for k, v in c.items() if k != "values"} for c in (CHANNEL, NOTE)]}  # fmt: skip
SEGMENT_QUERY = "segment=Channel%3Dapp"
ALERT = {"id": 7, "kind": "spike", "window": "batch", "theme": {"id": 3, "level": 2, "name": HOSTILE},
         "title": f"Spike: “{HOSTILE}” is 20.0 % of this upload vs 5.0 % before (×4.0)",
         "figures": {"count": 20, "n": 100, "share": 0.2, "baseline_share": 0.05, "lift": 4.0, "q_value": 1e-05},
         "examples": [{"doc_id": "D1", "text": HOSTILE + " again"}, {"doc_id": "D2", "text": "late"},
                      {"doc_id": "D3", "text": "third, not shown"}],
         "created_at": "2026-11-30T12:00:00Z", "project_id": "p1", "job_id": "j2"}  # fmt: skip


def p1_records() -> dict[int, dict]:
    records = [_record(1_000_001, 1, HOSTILE, 120, -0.42, (3, 5)),
               _record(1_000_002, 1, "Fit and sizing", 80, 0.3, (4,)),
               {**_record(1_000_003, 1, "Hidden one", 5, 0.0), "hidden": True},
               _record(3, 2, "Late parcels", 70, -0.6, (2_000_001, 2_000_002)),
               _record(5, 2, "Rude couriers", 50, -0.2), _record(4, 2, "Runs small", 80, 0.3),
               _record(2_000_001, 3, "Stuck at customs", 30, -0.7),
               _record(2_000_002, 3, "No tracking updates", 20, -0.5)]  # fmt: skip
    return {r["id"]: r for r in records}


# ---------------------------------------------------------------- the hostile battery

LONG_WORD = "aaargh" * 50  # one unbroken 300-character "word"
_GATE = "We sat at the gate for three hours and nobody told us anything."


def _long_parts() -> list[str]:
    """The sentences of a comment of exactly 10,000 characters (joined by spaces), the long word among them."""
    parts = [_GATE] * 75 + [LONG_WORD] + [_GATE] * 76
    pad = 10_000 - len(" ".join(parts)) - 1
    return [*parts, "Never again with this airline, not in a million years"[: pad - 1] + "."]


LONG_PARTS = _long_parts()
LONG_COMMENT = " ".join(LONG_PARTS)
IMG, SCRIPT = '<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>"
HYPERLINK, CMD, MINUS, AT_SUM = '=HYPERLINK("http://x.test","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"
ARABIC, HEBREW = "الرحلة تأخرت ثلاث ساعات", "הטיסה התעכבה"
EMOJI = (
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 \u2708\ufe0f\U0001f1fa\U0001f1f8 \U0001f621"  # family, plane, US flag
)
ENTITIES = "&amp; &lt;b&gt;"
HOSTILE_BATTERY = [IMG, SCRIPT, HYPERLINK, CMD, MINUS, AT_SUM, LONG_COMMENT, ARABIC, HEBREW, EMOJI, ENTITIES]
HOSTILE_DOCS = {text: f"X{i:02d}" for i, text in enumerate(HOSTILE_BATTERY)}  # the comment carrying each string
HOSTILE_NAMED = {1_000_001: IMG, 1: SCRIPT, 2: HYPERLINK, 3: CMD, 4: MINUS, 5: AT_SUM, 6: ARABIC, 7: HEBREW,
                 2_000_001: EMOJI, 2_000_002: ENTITIES}  # fmt: skip
HOSTILE_CARRIERS = (1_000_001, 1, 2_000_001)  # nodes whose first members and examples are the battery's comments
HOSTILE_KEYWORDS_NODE = 10
HOSTILE_KEYWORDS = [s for s in HOSTILE_BATTERY if s is not LONG_COMMENT]
HOSTILE_ALERT = 41
HOSTILE_NODES = {s: sorted({*HOSTILE_CARRIERS, *(n for n, name in HOSTILE_NAMED.items() if name == s),
                            *([HOSTILE_KEYWORDS_NODE] if s in HOSTILE_KEYWORDS else [])})
                 for s in HOSTILE_BATTERY}  # fmt: skip


def _hostile_parts(text: str) -> tuple[list[str], list[int]]:
    """A battery comment's sentences and which of them carry the theme."""
    if text is LONG_COMMENT:
        return LONG_PARTS, [LONG_PARTS.index(LONG_WORD) + 1, len(LONG_PARTS) - 1]
    return [text, "The flight was delayed again.", "Nobody at the gate could help."], [0, 1]


# ---------------------------------------------------------------- p2: the large project

N2 = 14_640
MONDAYS = [date(2015, 2, 2) + timedelta(weeks=k) for k in range(8)]
TOTALS = [1500, 1650, 1720, 1800, 1850, 1900, 2050, 2170]  # comments per week, 14,640 in all
CATEGORY_THEMES = (60, 30, 22, 18, 15, 12, 10, 9, 8, 7, 5, 4)  # themes per category, 200 in all
CATEGORY_NAMES = ["Delays", "Baggage", "Customer service", "Booking and fees", "Cancellations", "Seats and comfort",
                  "Food and drinks", "Loyalty program", "Check-in", "Crew", "Wi-Fi and entertainment", "Refunds"]  # fmt: skip
THEME_NAMES = ["Late flight", "Lost bag", "Cancelled flight", "Rude gate agent", "Long hold time", "Missed connection",
               "Broken seat", "No legroom", "Cold food", "Wi-Fi not working", "Rebooking fee", "Refund delay",
               "Overbooked flight", "Crew were great", "Friendly pilot", "Smooth landing", "Upgrade to first",
               "Miles not credited", "Check-in kiosk down", "Long security line", "Damaged suitcase",
               "Stroller gate-checked", "Dirty cabin", "Slow baggage claim", "Tarmac delay", "Weather delay",
               "Mechanical issue", "Change fee", "Seat assignment lost", "App crashed", "Boarding chaos",
               "Pet policy", "Wheelchair assistance", "Unaccompanied minor", "Great customer service",
               "Quick reply on Twitter", "Voucher not honoured", "Hotel voucher", "Lounge access",
               "Entertainment screen broken"]  # fmt: skip
AIRPORTS = ["JFK", "LAX", "ORD", "DFW", "DEN", "ATL", "SFO", "BOS", "EWR", "PHL"]
ASPECTS = ["no updates", "staff response", "compensation"]
WORDS = ["delay", "gate", "crew", "bag", "seat", "refund", "flight", "agent", "hours", "phone", "app", "fee", "miles",
         "boarding", "service", "plane", "connection", "voucher", "hold", "luggage"]  # fmt: skip
EMERGING = {1: "spike", 12: "spike", 47: "new", 180: "new", 2_000_004: "spike", 1_000_004: "spike"}
HIDDEN_P2 = {200}
MEMBERS = 40  # member comments of a node (20 a page)
P2_COLUMNS = [
    {"name": "airline", "type": "category", "distinct_values": 6, "filled": N2, "segment": True,
     "values": [{"value": v, "count": n} for v, n in (("United", 3822), ("US Airways", 2913), ("American", 2759),
                                                      ("Southwest", 2420), ("Delta", 2222), ("Virgin America", 504))]},
    {"name": "channel", "type": "category", "distinct_values": 3, "filled": N2, "segment": True,
     "values": [{"value": "web", "count": 8120}, {"value": "app", "count": 5210}, {"value": "email", "count": 1310}]},
    {"name": "tweet_location", "type": "text", "distinct_values": 3081, "filled": 9907, "segment": False},
    {"name": "fare", "type": "number", "distinct_values": 180, "filled": 11890, "segment": True, "min": 39.0,
     "max": 1249.0, "values": [{"value": v, "count": n} for v, n in (("129", 611), ("99", 544), ("149", 498),
                                                                     ("199", 431), ("79", 377), ("249", 312),
                                                                     ("59", 260), ("299", 233), ("349", 190),
                                                                     ("399", 151), ("449", 120), ("499", 96),
                                                                     ("599", 71), ("699", 44))]},
]  # fmt: skip
P2 = {"id": "p2", "name": "Airline (large)", "created_at": "2015-03-30T07:55:00Z", "current_job_id": "j8",
      "n_documents": N2, "n_themes": 200, "jobs": 3,
      "columns": [{k: v for k, v in c.items() if k not in ("values", "min", "max")} for c in P2_COLUMNS]}  # fmt: skip
P2_METADATA = {"schema_version": 3, "n_documents": N2, "n_categories": 12, "n_themes": 200, "n_sub_themes": 60,
               "counts": {"documents": N2, "project_documents": N2, "spans": 21_408}, "job_id": "j8",
               "project_id": "p2"}  # fmt: skip
P2_STATS = {"documents": N2, "sentiment": {"negative": 9178, "neutral": 3099, "positive": 2363},
            "sentiment_histogram": {"edges": [round(-1 + 0.2 * i, 1) for i in range(11)],
                                    "counts": [2100, 2400, 1900, 1500, 1150, 1950, 1300, 1000, 800, 540]},
            "ratings": [{"rating": float(r), "count": n} for r, n in ((1, 4100), (2, 2300), (3, 1900), (4, 1700),
                                                                     (5, 2000))],
            "period": {"first": "2015-02-02T06:12:00Z", "last": "2015-03-29T22:47:00Z", "dated": N2}}  # fmt: skip


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _mood(mean: float) -> dict:
    """A node's sentiment: mean and negative/neutral/positive fractions (summing to 1) that agree with it."""
    negative, positive = _clamp(0.25 - 0.75 * mean, 0.02, 0.9), _clamp(0.2 + 0.75 * mean, 0.02, 0.9)
    scale = min(1.0, 0.98 / (negative + positive))
    negative, positive = round(negative * scale, 4), round(positive * scale, 4)
    return {"mean": round(mean, 4), "negative": negative, "neutral": round(1 - negative - positive, 4),
            "positive": positive}  # fmt: skip


def _skew(*parts: object) -> float:
    """A fixed factor in [0.4, 1.6] for these parts (how a node fares in a segment, a value, a week)."""
    return 0.4 + 1.2 * (zlib.crc32(repr(parts).encode()) % 1000) / 999


def _allocate(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (whole numbers summing to it: largest remainders)."""
    raw = [total * w / (sum(weights) or 1) for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _theme_name(i: int) -> str:
    base = THEME_NAMES[(i - 1) % len(THEME_NAMES)]
    return base if i <= len(THEME_NAMES) else f"{base} at {AIRPORTS[(i - 1) // len(THEME_NAMES) - 1]}"


def p2_records(ratings: bool = True) -> dict[int, dict]:
    """The large project's nodes, full records (fixed seed: the same every time)."""
    rng = random.Random(2015)
    theme_size = {i: round(1100 * i**-0.9) + 5 for i in range(1, 201)}
    slots = [c for c, n in enumerate(CATEGORY_THEMES) for _ in range(n)]
    rng.shuffle(slots)
    groups: dict[int, list[int]] = {}
    for theme, slot in zip(range(1, 201), slots):
        groups.setdefault(slot, []).append(theme)
    sizes = {c: min(N2, round(0.85 * sum(theme_size[t] for t in themes))) for c, themes in groups.items()}
    by_size = sorted(groups, key=lambda c: (-sizes[c], c))  # the largest category is 1000001
    records: dict[int, dict] = {}

    def add(node_id: int, level: int, parent: int | None, name: str, size: int, children: list[int]) -> None:
        mean = rng.uniform(-0.8, 0.7)
        rating = {"mean": round(_clamp(3 + 2.2 * mean + rng.uniform(-0.3, 0.3), 1, 5), 4), "count": round(0.82 * size)}
        coef, width = round(0.9 * mean + rng.uniform(-0.15, 0.15), 4), rng.uniform(0.05, 0.3)
        impact = {"coef": coef, "low": round(coef - width, 4), "high": round(coef + width, 4), "n": rating["count"]}
        keywords = [w.lower() for w in re.findall(r"[A-Za-z]+", name) if len(w) > 2][:4]
        keywords += [w for w in rng.sample(WORDS, 10) if w not in keywords][: 10 - len(keywords)]
        name = HOSTILE_NAMED.get(node_id, name)
        records[node_id] = {
            "id": node_id, "level": level, "parent": parent, "children": children, "name": name, "label": name,
            "keywords": HOSTILE_KEYWORDS if node_id == HOSTILE_KEYWORDS_NODE else keywords, "size": size,
            "share": round(size / N2, 4), "span_count": round(1.4 * size), "sentiment": _mood(mean),
            "rating": rating if ratings else None, "cohesion": round(rng.uniform(0.3, 0.8), 4), "examples": [],
            "features": [node_id] if level == 2 else [], "first_seen_job": "j8" if node_id in (47, 180) else "j6",
            "is_new": node_id in (47, 180), "impact": impact if ratings and level == 2 else None,
            "emerging": node_id in EMERGING, "emerging_reason": EMERGING.get(node_id), "merged": [],
            "hidden": node_id in HIDDEN_P2,
        }  # fmt: skip

    for rank, c in enumerate(by_size):
        category = 1_000_001 + rank
        add(category, 1, None, CATEGORY_NAMES[rank], sizes[c], sorted(groups[c]))
        for theme in groups[c]:
            subs = [2_000_001 + 3 * (theme - 1) + k for k in range(3)] if theme <= 20 else []
            add(theme, 2, category, _theme_name(theme), theme_size[theme], subs)
            for k, sub in enumerate(subs):
                share = (0.4, 0.25, 0.15)[k]
                add(sub, 3, theme, f"{_theme_name(theme)}: {ASPECTS[k]}", round(theme_size[theme] * share), [])
    for record in records.values():
        members = p2_members(record)
        picks = [0, 6, 7, 9, 10] if record["id"] in HOSTILE_CARRIERS else range(min(3, len(members)))
        record["examples"] = [_example(members[j]) for j in picks]
    return records


def p2_members(record: dict) -> list[dict]:
    """A p2 node's member comments, highest activation first (a hostile carrier's first ones: the battery)."""
    node, mean, rating = record["id"], record["sentiment"]["mean"], record["rating"]
    members = []
    for j in range(min(MEMBERS, record["size"])):
        if node in HOSTILE_CARRIERS and j < len(HOSTILE_BATTERY):
            doc_id, (parts, marked) = HOSTILE_DOCS[HOSTILE_BATTERY[j]], _hostile_parts(HOSTILE_BATTERY[j])
        else:
            doc_id, marked = f"{node}-{j:02d}", [1, 2] if j % 3 == 0 else [1]
            parts = [f"Flight {100 + (7 * node + j) % 900} out of {AIRPORTS[(node + j) % len(AIRPORTS)]}.",
                     f"The {record['keywords'][0]} was a problem again.", "I expected better."]  # fmt: skip
        activation = round(0.97 - 0.015 * j, 4)
        score = round(_clamp(mean + ((37 * j + node) % 21 - 10) / 50, -1, 1), 4)
        members.append({
            "doc_id": doc_id, "text": " ".join(parts), "activation": activation, "sentiment_score": score,
            "sentiment_label": "negative" if score <= -0.05 else "positive" if score >= 0.05 else "neutral",
            "rating": float(_clamp(round(rating["mean"] + (j % 5 - 2) / 2), 1, 5)) if rating else None,
            "spans": _spans(parts, marked, activation),
        })  # fmt: skip
    return members


def _spans(parts: list[str], marked: list[int], activation: float) -> list[dict]:
    """The marked sentences of ``" ".join(parts)`` as spans: character offsets in code points (Python's)."""
    starts = [sum(len(p) + 1 for p in parts[:i]) for i in range(len(parts))]
    return [{"index": i, "start": starts[i], "end": starts[i] + len(parts[i]),
             "activation": round(activation - 0.05 * k, 4)} for k, i in enumerate(marked)]  # fmt: skip


def _example(member: dict) -> dict:
    span = member["spans"][0]
    return {"doc_id": member["doc_id"], "text": member["text"], "activation": member["activation"],
            "span": {"index": span["index"], "start": span["start"], "end": span["end"],
                     "text": member["text"][span["start"] : span["end"]]}}  # fmt: skip


def p2_trend_counts(record: dict) -> list[int]:
    """A p2 node's comments per week (summing to its size; an emerging node's rising at the end)."""
    reason, node = record["emerging_reason"], record["id"]
    weights = [TOTALS[k] * _skew(node, "week", k) for k in range(8)]
    if reason == "spike":
        weights[-1] *= 4
    elif reason == "new":
        weights = [0, 0, 0, 0, 0, TOTALS[5], 2 * TOTALS[6], 4 * TOTALS[7]]
    return _allocate(record["size"], weights)


def p2_alerts() -> list[dict]:
    """The large project's alerts (their nodes named when listed), newest first."""
    base = {"created_at": "2015-03-30T08:00:00Z", "project_id": "p2", "job_id": "j8"}
    week = {"window_start": "2015-03-23", "window_end": "2015-03-29"}
    examples = [{"doc_id": HOSTILE_DOCS[s], "text": f"{s} The flight was delayed again."[:1000]} for s in (IMG, EMOJI)]
    examples.insert(1, {"doc_id": HOSTILE_DOCS[LONG_COMMENT], "text": LONG_COMMENT[:1000]})
    plain = [{"doc_id": "12-00", "text": "Flight 184 out of ORD. The delay was a problem again."},
             {"doc_id": "12-01", "text": "Three hours at the gate, no news."}]  # fmt: skip
    alerts = [
        {"id": HOSTILE_ALERT, "kind": "spike", "window": "batch", "theme": 1,
         "title": f"Spike: “{SCRIPT}” is 9.8 % of this upload vs 6.1 % before (×1.6) {EMOJI}",
         "figures": {"count": 212, "n": 2170, "share": 0.0977, "baseline_count": 760, "baseline_n": 12470,
                     "baseline_share": 0.0609, "lift": 1.6, "p_value": 2.1e-09, "q_value": 4.2e-07,
                     "sentiment_mean": -0.61, "baseline_sentiment": -0.55}, "examples": examples},
        {"id": 42, "kind": "new_theme", "window": "week", "theme": 47,
         "title": "New theme: “Tarmac delay at JFK” — 38 comments, 1.8 % of the last 7 days (2015-03-23 – 2015-03-29) "
                  "vs 0.0 % before",
         "figures": {"count": 38, "n": 2170, "share": 0.0175, "baseline_count": 0, "baseline_n": 12470,
                     "baseline_share": 0.0, "lift": None, "p_value": 1.3e-12, "q_value": 5.2e-10, **week},
         "examples": plain},
        {"id": 43, "kind": "sentiment_drop", "window": "day", "theme": 2_000_004,
         "title": "Sentiment drop: “Lost bag: no updates” averages -0.72 in the last day (2015-03-29) vs -0.31 before "
                  "(41 comments)",
         "figures": {"count": 41, "n": 310, "share": 0.1323, "baseline_count": 143, "baseline_n": 14330,
                     "baseline_share": 0.01, "lift": 13.2, "sentiment_mean": -0.72, "baseline_sentiment": -0.31,
                     "p_value": 3.0e-06, "q_value": 0.00021, "window_start": "2015-03-29", "window_end": "2015-03-29"},
         "examples": plain[:1]},
        {"id": 44, "kind": "spike", "window": "week", "theme": 12,
         "title": "Spike: “Refund delay” is 3.9 % of the last 7 days (2015-03-23 – 2015-03-29) vs 1.4 % before (×2.8)",
         "figures": {"count": 85, "n": 2170, "share": 0.0392, "baseline_count": 175, "baseline_n": 12470,
                     "baseline_share": 0.014, "lift": 2.8, "p_value": 1.0e-10, "q_value": 2.0e-08, **week},
         "examples": plain},
        {"id": 45, "kind": "sentiment_drop", "window": "batch", "theme": 9,
         "title": "Sentiment drop: “Cold food” averages -0.48 in this upload vs -0.12 before (64 comments)",
         "figures": {"count": 64, "n": 2170, "share": 0.0295, "baseline_count": 290, "baseline_n": 12470,
                     "baseline_share": 0.0233, "lift": 1.27, "sentiment_mean": -0.48, "baseline_sentiment": -0.12,
                     "p_value": 8.0e-05, "q_value": 0.0031}, "examples": plain[1:]},
    ]  # fmt: skip
    return [{**alert, **base} for alert in alerts]


# ---------------------------------------------------------------- segments


class Problem(Exception):
    """An error answer (``application/problem+json``), as the service's ``problem`` builds it."""

    TITLES: ClassVar[dict[int, str]] = {
        400: "Bad request",
        404: "Not found",
        409: "Conflict",
        422: "Unprocessable content",
    }

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"type": f"/problems/{code}", "title": self.TITLES.get(status, "Error"), "status": status,
                     "detail": detail}  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """A segment of a project's comments: its conditions and dates, and the fraction of the comments in it."""

    conditions: tuple[str, ...]
    date_from: str | None
    date_to: str | None
    fraction: float
    weeks: tuple[int, ...]  # the weeks (of MONDAYS) it keeps

    def describe(self) -> dict:
        return {"conditions": list(self.conditions), "from": self.date_from, "to": self.date_to}

    def metadata(self, n_total: int) -> dict:
        return {**self.describe(), "n_documents": self.n(n_total)}

    def n(self, n_total: int) -> int:
        return round(n_total * self.fraction)

    def size(self, node_id: int, size: int, n_total: int) -> int:
        """A node's comments in the segment."""
        return min(size, self.n(n_total), round(size * self.fraction * _skew(node_id, self.conditions, self.weeks)))

    def mood(self, node_id: int, mean: float) -> dict:
        return _mood(_clamp(mean + 0.15 * (_skew(node_id, self.conditions, self.weeks) - 1), -1, 1))


def _day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise Problem(422, f"{what}: {value!r} is not a date (write YYYY-MM-DD or an ISO 8601 time)",
                      "bad-segment") from None  # fmt: skip


def checked_column(column: dict | None, name: str, offered: str) -> None:
    """A 422 like the service's for a column the project lacks or one of free text."""
    if column is None:
        raise Problem(422, f"segment: the project has no metadata column {name!r}; columns: {offered}", "bad-segment")
    if not column["segment"]:
        raise Problem(422, f"segment: column {name!r} is free text ({column['distinct_values']} distinct values), "
                      f"not a segment; columns: {offered}", "bad-segment")  # fmt: skip


def parse_segment(columns: list[dict], n_total: int, dated: bool, conditions: list[str], date_from: str | None,
                  date_to: str | None) -> Segment | None:  # fmt: skip
    """The segment of these query values (None: every comment); 422 ``bad-segment`` like the service's."""
    conditions = [c for c in conditions if c.strip()]
    if not conditions and not date_from and not date_to:
        return None
    by_name = {c["name"]: c for c in columns}
    offered = ", ".join(repr(c["name"]) for c in columns if c["segment"])
    equal: dict[str, float] = {}
    fraction = 1.0
    for text in conditions:
        match = re.search(r"(!=|>=|<=|=|>|<)", text)
        if match is None or not text[: match.start()].strip():
            raise Problem(422, f"segment {text!r}: write column=value (or !=, <, <=, >, >= for numbers and dates)",
                          "bad-segment")  # fmt: skip
        name, op, value = text[: match.start()].strip(), match[1], text[match.end() :].strip()
        column = by_name.get(name)
        checked_column(column, name, offered)
        counts = {v["value"]: v["count"] for v in column.get("values", [])}
        if op in ("=", "!="):
            share = counts.get(value, 0) / n_total
            if op == "=":
                equal[name] = equal.get(name, 0.0) + share
            else:
                fraction *= 1 - share
        elif column["type"] != "number":
            raise Problem(422, f"segment {text}: {name!r} is a category; use = or !=", "bad-segment")
        else:
            try:
                at = _clamp((float(value) - column["min"]) / (column["max"] - column["min"]), 0, 1)
            except ValueError:
                raise Problem(422, f"segment {text}: {name!r} holds numbers; {value!r} is not one",
                              "bad-segment") from None  # fmt: skip
            fraction *= (at if op.startswith("<") else 1 - at) * column["filled"] / n_total
    for share in equal.values():
        fraction *= share
    weeks = tuple(range(len(MONDAYS))) if dated else ()
    if date_from or date_to:
        first = _day(date_from, "from") if date_from else date.min
        last = _day(date_to, "to") if date_to else date.max
        weeks = tuple(k for k in weeks if MONDAYS[k] <= last and MONDAYS[k] + timedelta(days=6) >= first)
        fraction *= sum(TOTALS[k] for k in weeks) / N2
    return Segment(tuple(conditions), date_from or None, date_to or None, fraction, weeks)


def _cursor(offset: int, limit: int, total: int) -> str | None:
    end = offset + limit
    return base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=") if end < total else None


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode())
    except ValueError:
        raise Problem(400, "the cursor is not one this API gave out", "invalid-cursor") from None


def _multipart(body: bytes) -> dict:
    """A multipart form's fields (a file: its filename and size, never its bytes)."""
    delimiter = body.split(b"\r\n", 1)[0]
    fields: dict = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name is None:
            continue
        if filename is not None:
            fields[name[1].decode()] = {"filename": filename[1].decode("utf-8", "replace"), "size": len(content)}
        else:
            fields[name[1].decode()] = content.decode("utf-8", "replace")
    return fields


# ---------------------------------------------------------------- the stub


class StubApi:
    """The page's static files (with the service's security headers) and both projects' /v1 answers.

    ``kind``: ``"default"`` (also ``"p1"``, ``"p2"``) or ``"p2-no-ratings"`` (p2 without ratings: ``rating``,
    ``rating_mean`` and ``impact`` null everywhere, ``/stats`` ratings ``[]``); ``job_fails``: an upload's job ends
    ``failed`` (in stage train) instead of ``succeeded``."""

    def __init__(self, kind: str = "default", *, job_fails: bool = False) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        self.kind, self.ratings, self.job_fails = kind, kind != "p2-no-ratings", job_fails
        self.nodes = {"p1": p1_records(), "p2": p2_records(self.ratings)}
        self.records = self.nodes["p1"]  # the small project's records, as before
        self.parent = {
            p: {c: r["id"] for r in nodes.values() for c in r["children"]} for p, nodes in self.nodes.items()
        }
        self.merged_into: dict[str, dict[int, int]] = {"p1": {}, "p2": {}}
        self.trends = {n: p2_trend_counts(r) for n, r in self.nodes["p2"].items()}
        self.queries: list[tuple[str, str, str]] = []  # (method, path, query) of every /v1 request
        self.patches: list[tuple[int, dict]] = []  # (node id, body) of every PATCH
        self.posts: list[tuple[str, dict]] = []  # (path, body) of every POST; an upload's file: filename and size
        self.job_calls = -1  # GET /v1/jobs/j9 calls since the upload (-1: no upload yet)

    # ------------------------------------------------------------ routing

    def answer(self, method: str, path: str, query: str, body: str | bytes | None) -> tuple[int, object]:
        """A request's answer: (status, JSON value; a CSV report: its text)."""
        if path.startswith("/v1/"):
            self.queries.append((method, path, query))
        params = parse_qs(query, keep_blank_values=True)
        raw = body.encode() if isinstance(body, str) else body or b""
        data: dict = {}
        try:
            if method in ("PATCH", "POST"):
                data = _multipart(raw) if raw.startswith(b"--") else json.loads(raw or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            if method == "POST":
                self.posts.append((path, data))
            return self.route(method, path, params, data)
        except Problem as problem:
            return problem.status, problem.body
        except ValueError as exc:  # a body that is not a JSON object, a query value that is not a number
            return 422, Problem(422, f"invalid request: {exc}", "validation-error").body

    def route(self, method: str, path: str, params: dict[str, list[str]], data: dict) -> tuple[int, object]:
        one = {k: v[-1] for k, v in params.items()}
        if (method, path) == ("GET", "/v1/projects"):
            return 200, {"projects": [PROJECT, P2], "next_cursor": None}
        if (method, path) == ("POST", "/v1/jobs"):
            self.job_calls = 0
            return 202, {"id": JOB_ID, "status": "queued", "project_id": "p2"}
        if match := re.fullmatch(r"/v1/jobs/([^/]+)", path):
            if method == "GET" and match[1] == JOB_ID and self.job_calls >= 0:
                return 200, self.job()
            raise Problem(404, f"no job {match[1]!r}", "job-not-found")
        match = re.fullmatch(r"/v1/projects/([^/]+)(/.*)?", path)
        if match is None:
            raise Problem(404, f"no stub for {method} {path}", "not-found")
        p, rest = match[1], match[2] or ""
        if p not in self.nodes:
            raise Problem(404, f"no project {p!r}", "project-not-found")
        segment = self.segment(p, params)
        if (method, rest) == ("GET", ""):
            return 200, PROJECT if p == "p1" else P2
        if (method, rest) == ("GET", "/columns"):
            return 200, self.columns(p, int(one.get("values", 20)))
        if (method, rest) == ("GET", "/themes"):
            return 200, self.themes_page(p, one, segment, "Channel=app" in params.get("segment", []))
        if (method, rest) == ("GET", "/tree"):
            return 200, self.tree(p, one.get("include_hidden") in ("true", "1"), segment)
        if (method, rest) == ("GET", "/trends"):
            return 200, self.trends_view(p, int(one.get("level", 2)), segment)
        if (method, rest) == ("GET", "/stats"):
            return 200, self.stats(p, segment)
        if (method, rest) == ("GET", "/alerts"):
            return 200, self.alerts(p, int(one.get("limit", 50)), one.get("kind"))
        if (method, rest) == ("GET", "/compare"):
            return 200, self.compare(p, params, one)
        if (method, rest) == ("POST", "/report-token"):
            return 201, self.report_token(p)
        if method == "GET" and (report := re.fullmatch(r"/reports/(\w+)\.csv", rest)):
            return 200, self.report(p, report[1], one.get("bom") in ("1", "true"))
        node = re.fullmatch(r"/(themes|nodes)/(\d+)(/\w+)?", rest)
        if node is None:
            raise Problem(404, f"no stub for {method} {path}", "not-found")
        which, node_id, action = node[1], int(node[2]), node[3] or ""
        if (method, action) == ("PATCH", ""):
            self.patches.append((node_id, data))
            return 200, self.edit(p, node_id, data)
        if (method, which, action) == ("POST", "themes", "/merge"):
            return 200, self.merge(p, node_id, data.get("themes"))
        if (method, which, action) == ("POST", "themes", "/unmerge"):
            return 200, self.unmerge(p, node_id)
        if (method, which, action) == ("GET", "themes", "/segments"):
            return 200, self.value_shares(p, node_id, one.get("column", ""), int(one.get("values", 12)), segment)
        if (method, which, action) == ("GET", "nodes", "/children"):
            return 200, self.children(p, node_id, one.get("include_hidden") in ("true", "1"), segment)
        if (method, action) == ("GET", ""):
            return 200, self.detail(p, node_id, which, one, segment)
        raise Problem(404, f"no stub for {method} {path}", "not-found")

    def handle(self, route) -> None:  # type: ignore[no-untyped-def]
        """The Playwright route handler: the page's files, or the stub's answer."""
        from service.api.routes_web import SECURITY, TYPES, WEB

        request = route.request
        path, query = urlsplit(request.url).path, urlsplit(request.url).query
        if path == "/" or path.startswith("/static/"):
            file = (WEB / ("index.html" if path == "/" else path.removeprefix("/static/"))).resolve()
            if WEB in file.parents and file.is_file() and file.suffix in TYPES:
                return route.fulfill(body=file.read_bytes(), headers={**SECURITY, "Content-Type": TYPES[file.suffix]})
            status, data = 404, Problem(404, f"no file {path!r}", "not-found").body
        else:
            status, data = self.answer(request.method, path, query, request.post_data_buffer)
        if isinstance(data, str):  # a report
            headers = {"Content-Type": "text/csv; charset=utf-8", "X-Report-Schema-Version": "3",
                       "Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}"'}  # fmt: skip
            return route.fulfill(status=status, body=data.encode(), headers=headers)
        kind = "application/problem+json" if status >= 400 else "application/json"
        route.fulfill(status=status, body=json.dumps(data), headers={"Content-Type": kind})

    # ------------------------------------------------------------ the tree as shown

    def n_documents(self, p: str) -> int:
        return PROJECT["n_documents"] if p == "p1" else N2

    def root(self, p: str, node_id: int) -> int:
        seen = {node_id}
        while (target := self.merged_into[p].get(node_id)) is not None and target not in seen:
            node_id = target
            seen.add(node_id)
        return node_id

    def roots(self, p: str) -> list[int]:
        return [n for n in self.nodes[p] if self.root(p, n) == n]

    def hidden(self, p: str, node_id: int) -> bool:
        """Hidden itself or under a hidden node."""
        while node_id is not None:
            if self.nodes[p][node_id]["hidden"]:
                return True
            parent = self.parent[p].get(node_id)
            node_id = None if parent is None else self.root(p, parent)
        return False

    def shown(self, p: str, include_hidden: bool) -> list[int]:
        return [n for n in self.roots(p) if include_hidden or not self.hidden(p, n)]

    def view(self, p: str, node_id: int, segment: Segment | None = None) -> dict:
        """A shown node's record: merges applied (figures of its group), then the segment's figures."""
        record = dict(self.nodes[p][node_id])
        group = [node_id, *sorted(n for n in self.merged_into[p] if self.root(p, n) == node_id)]
        records = [self.nodes[p][n] for n in group]
        children = sorted({c for r in records for c in r["children"] if self.root(p, c) == c})
        record.update(children=children, merged=group[1:])
        if len(group) > 1:
            size = min(self.n_documents(p), sum(r["size"] for r in records))
            mean = sum(r["sentiment"]["mean"] * r["size"] for r in records) / max(1, sum(r["size"] for r in records))
            rated = [r["rating"] for r in records if r["rating"]]
            count = sum(r["count"] for r in rated)
            keywords = list(dict.fromkeys(k for r in records for k in r["keywords"]))[:10]
            examples = sorted((e for r in records for e in r["examples"]), key=lambda e: -e["activation"])[:5]
            record.update(size=size, share=round(size / self.n_documents(p), 4), sentiment=_mood(mean),
                          keywords=keywords, examples=examples, span_count=sum(r["span_count"] for r in records),
                          rating={"mean": round(sum(r["mean"] * r["count"] for r in rated) / count, 4),
                                  "count": count} if count else None)  # fmt: skip
        if segment is not None:
            n, size = segment.n(self.n_documents(p)), segment.size(node_id, record["size"], self.n_documents(p))
            rating = record["rating"] and {**record["rating"], "count": round(record["rating"]["count"] * size /
                                                                              max(1, record["size"]))}  # fmt: skip
            record.update(size=size, share=round(size / max(1, n), 4), sentiment=segment.mood(node_id,
                          record["sentiment"]["mean"]), rating=rating or None, impact=None,
                          examples=record["examples"][::2])  # fmt: skip
        return record

    def shown_node(self, p: str, node_id: int) -> dict:
        """The node's stored record; 404 when the project lacks it or it was merged into another."""
        if node_id not in self.nodes[p]:
            raise Problem(404, f"no theme {node_id} in this project", "theme-not-found")
        if (root := self.root(p, node_id)) != node_id:
            raise Problem(404, f"theme {node_id} was merged into theme {root}", "theme-merged")
        return self.nodes[p][node_id]

    def segment(self, p: str, params: dict[str, list[str]]) -> Segment | None:
        """The request's segment: p2's from ``segment``/``from``/``to``; p1 filters its themes list only, as before."""
        if p == "p1":
            return None
        return parse_segment(P2_COLUMNS, N2, True, params.get("segment", []), (params.get("from") or [None])[-1],
                             (params.get("to") or [None])[-1])  # fmt: skip

    def metadata(self, p: str, segment: Segment | None) -> dict:
        if p == "p1":
            return {}
        return {**P2_METADATA, "segment": segment.metadata(N2)} if segment else dict(P2_METADATA)

    # ------------------------------------------------------------ reading

    def themes_page(self, p: str, one: dict[str, str], segment: Segment | None, app_channel: bool) -> dict:
        include_hidden = one.get("include_hidden") in ("true", "1")
        themes = [self.view(p, n, segment) for n in self.shown(p, include_hidden) if self.nodes[p][n]["level"] == 2]
        if segment is not None:
            themes = [t for t in themes if t["size"]]
        if p == "p1" and app_channel:  # the app channel: a third of each theme, the largest one absent
            themes = [{**t, "size": t["size"] // 3} for t in themes if t["id"] != 4]
        key = (lambda t: t["sentiment"]["mean"]) if one.get("sort") == "sentiment" else (lambda t: t["size"])
        themes.sort(key=lambda t: t["id"])
        themes.sort(key=key, reverse=one.get("order", "desc") == "desc")
        offset, limit = _offset(one.get("cursor")), int(one.get("limit", 50))
        metadata = self.metadata(p, segment)
        if p == "p1" and app_channel:
            metadata = {"segment": {"conditions": ["Channel=app"], "n_documents": 40}}
        return {"metadata": metadata, "themes": themes[offset : offset + limit],
                "next_cursor": _cursor(offset, limit, len(themes))}  # fmt: skip

    def tree(self, p: str, include_hidden: bool, segment: Segment | None) -> dict:
        records = {n: self.view(p, n, segment) for n in self.shown(p, include_hidden)}
        if segment is not None:
            records = {n: r for n, r in records.items() if r["size"]}

        def nested(node_id: int) -> dict:
            record = records[node_id]
            below = sorted((c for c in record["children"] if c in records), key=lambda c: (-records[c]["size"], c))
            node = _compact(record, [nested(c) for c in below], (node_id == 3) if p == "p1" else None)
            return {**node, "hidden": record["hidden"]} if include_hidden else node  # its own flag, as the service

        tops = sorted((n for n, r in records.items() if r["level"] == 1), key=lambda n: (-records[n]["size"], n))
        return {"metadata": self.metadata(p, segment), "categories": [nested(n) for n in tops]}

    def detail(self, p: str, node_id: int, which: str, one: dict[str, str], segment: Segment | None) -> dict:
        self.shown_node(p, node_id)
        record = self.view(p, node_id, segment)
        if segment is not None:
            record["segment"] = segment.metadata(N2)
        if which == "nodes":
            return record
        members: list[dict] = []
        if p == "p2":
            group = [node_id, *record["merged"]]
            members = sorted((m for n in group for m in p2_members(self.nodes[p][n])), key=lambda m: -m["activation"])
            members = list({m["doc_id"]: m for m in reversed(members)}.values())[::-1]  # once each, highest first
            members = members[::2] if segment is not None else members
        offset, limit = _offset(one.get("cursor")), int(one.get("limit", 50))
        return {"theme": record, "members": members[offset : offset + limit],
                "next_cursor": _cursor(offset, limit, len(members))}  # fmt: skip

    def children(self, p: str, node_id: int, include_hidden: bool, segment: Segment | None) -> dict:
        self.shown_node(p, node_id)
        shown = set(self.shown(p, include_hidden))
        records = [self.view(p, c, segment) for c in self.view(p, node_id)["children"] if c in shown]
        records = [r for r in records if segment is None or r["size"]]
        return {"metadata": self.metadata(p, segment), "node_id": node_id,
                "children": sorted(records, key=lambda r: (-r["size"], r["id"]))}  # fmt: skip

    def columns(self, p: str, values: int) -> dict:
        if p == "p1":
            return {"columns": [CHANNEL, NOTE]}
        return {"columns": [{**c, "values": c["values"][:values]} if "values" in c else c for c in P2_COLUMNS]}

    def trends_view(self, p: str, level: int, segment: Segment | None) -> dict:
        if p == "p1":
            return {"period": None, "periods": [], "totals": [], "themes": []}
        weeks = segment.weeks if segment else tuple(range(len(MONDAYS)))
        scale = segment.fraction * N2 / max(1, sum(TOTALS[k] for k in weeks)) if segment else 1.0
        totals = [round(TOTALS[k] * scale) for k in weeks]
        themes = []
        for n in self.roots(p):
            record = self.nodes[p][n]
            if record["level"] != level:
                continue
            group = [n, *(m for m in self.merged_into[p] if self.root(p, m) == n)]
            ratio = segment.size(n, record["size"], N2) / max(1, record["size"] * segment.fraction) if segment else 1
            counts = [
                min(t, round(sum(self.trends[m][k] for m in group) * scale * ratio)) for k, t in zip(weeks, totals)
            ]
            themes.append({"theme_id": n, "level": level, "counts": counts,
                           "shares": [round(c / t, 4) if t else 0.0 for c, t in zip(counts, totals)]})  # fmt: skip
        answer = {"period": "week" if weeks else None, "periods": [MONDAYS[k].isoformat() for k in weeks],
                  "totals": totals, "themes": themes if weeks else []}  # fmt: skip
        return {**answer, "segment": segment.metadata(N2)} if segment else answer

    def stats(self, p: str, segment: Segment | None) -> dict:
        if p == "p1":
            return {"documents": 200, "sentiment": {"negative": 80, "neutral": 40, "positive": 80},
                    "sentiment_histogram": {"counts": [5] * 10, "edges": [i / 5 - 1 for i in range(11)]},
                    "ratings": [], "period": None}  # fmt: skip
        stats = json.loads(json.dumps(P2_STATS))
        stats["ratings"] = stats["ratings"] if self.ratings else []
        if segment is None:
            return stats
        n = segment.n(N2)
        sentiment = _allocate(n, list(stats["sentiment"].values()))
        rated = round(n * sum(r["count"] for r in stats["ratings"]) / N2)
        ratings = _allocate(rated, [r["count"] for r in stats["ratings"]]) if stats["ratings"] else []
        first, last = (MONDAYS[segment.weeks[0]], MONDAYS[segment.weeks[-1]] + timedelta(days=6)) if segment.weeks \
            else (None, None)  # fmt: skip
        return {"segment": segment.metadata(N2), "documents": n,
                "sentiment": dict(zip(stats["sentiment"], sentiment)),
                "sentiment_histogram": {"edges": stats["sentiment_histogram"]["edges"],
                                        "counts": _allocate(n, stats["sentiment_histogram"]["counts"])},
                "ratings": [{"rating": r["rating"], "count": c} for r, c in zip(stats["ratings"], ratings)],
                "period": {"first": f"{first.isoformat()}T06:12:00Z", "last": f"{last.isoformat()}T22:47:00Z",
                           "dated": n} if n and first else None}  # fmt: skip

    def alerts(self, p: str, limit: int, kind: str | None) -> dict:
        if p == "p1":
            return {"alerts": [ALERT], "next_cursor": None}
        alerts = []
        for alert in p2_alerts():
            node = self.nodes[p][alert["theme"]]
            alerts.append({**alert, "theme": {"id": node["id"], "level": node["level"], "name": node["name"]}})
        alerts = [a for a in alerts if kind in (None, a["kind"])]
        return {"alerts": alerts[:limit], "next_cursor": _cursor(0, limit, len(alerts))}

    def compare(self, p: str, params: dict[str, list[str]], one: dict[str, str]) -> dict:
        """Segment a against b (every other comment when b is absent): the level's 30 largest nodes, the first 8
        significant."""
        columns, n_total = (P2_COLUMNS, N2) if p == "p2" else ([CHANNEL, NOTE], 200)
        level, alpha = int(one.get("level", 2)), float(one.get("alpha", 0.05))
        a = parse_segment(columns, n_total, p == "p2", params.get("a", []), one.get("a_from"), one.get("a_to"))
        b = parse_segment(columns, n_total, p == "p2", params.get("b", []), one.get("b_from"), one.get("b_to"))
        if a is None:
            raise Problem(422, "compare needs segment a: give a=column=value (or a_from/a_to)", "bad-segment")
        n_a = a.n(n_total)
        n_b = b.n(n_total) if b else n_total - n_a
        nodes = sorted((self.view(p, n) for n in self.shown(p, False) if self.nodes[p][n]["level"] == level),
                       key=lambda r: (-r["size"], r["id"]))[:30]  # fmt: skip
        rows = []
        for i, record in enumerate(nodes):
            lift = (1.9 if i % 2 == 0 else 0.5) if i < 8 else 0.9 + 0.2 * _skew(record["id"], "compare") / 1.6
            count_a = min(n_a, round(record["size"] * n_a / n_total * lift))
            count_b = min(n_b, round(record["size"] * n_b / n_total))
            share_a, share_b = round(count_a / max(1, n_a), 4), round(count_b / max(1, n_b), 4)
            mean = record["sentiment"]["mean"]
            rows.append({"id": record["id"], "level": level, "name": record["name"], "parent": self.parent[p].get(
                record["id"]), "a": {"count": count_a, "share": share_a, "sentiment_mean": round(mean - 0.1, 4)
                                     if count_a else None},
                "b": {"count": count_b, "share": share_b, "sentiment_mean": round(mean, 4) if count_b else None},
                "difference": round(share_a - share_b, 4), "lift": round(share_a / share_b, 4) if share_b else None,
                "sentiment_difference": -0.1 if count_a and count_b else None,
                "p_value": 1e-6 * (i + 1) if i < 8 else round(0.3 + 0.02 * i, 4)})  # fmt: skip
        ranked = sorted(range(len(rows)), key=lambda i: rows[i]["p_value"])
        q = 1.0
        for rank in reversed(range(len(ranked))):  # Benjamini–Hochberg
            row = rows[ranked[rank]]
            q = min(q, row["p_value"] * len(rows) / (rank + 1))
            row["q_value"], row["significant"] = q, q < alpha
        rows.sort(key=lambda r: (not r["significant"], -abs(r["difference"]), r["id"]))
        empty = {"conditions": [], "from": None, "to": None}
        return {"level": level, "alpha": alpha, "test": "two-proportion (chi-squared, 2x2), Benjamini-Hochberg",
                "a": a.metadata(n_total),
                "b": {**(b.describe() if b else empty), "n_documents": n_b, "rest": b is None},
                "themes": rows}  # fmt: skip

    def value_shares(self, p: str, node_id: int, name: str, n_values: int, segment: Segment | None) -> dict:
        """A node's figures per value of a column (``/themes/{id}/segments``), like the service's theme_segments."""
        self.shown_node(p, node_id)
        record = self.view(p, node_id)
        columns, n_total = (P2_COLUMNS, N2) if p == "p2" else ([CHANNEL, NOTE], 200)
        column = next((c for c in columns if c["name"] == name), None)
        offered = ", ".join(repr(c["name"]) for c in columns if c["segment"])
        checked_column(column, name, offered)
        fraction = segment.fraction if segment else 1.0
        shown_record = self.view(p, node_id, segment)  # its figures over the segment
        size, n_segment, mean = shown_record["size"], round(n_total * fraction), shown_record["sentiment"]["mean"]

        def figures(key: object, n_documents: int, count: int) -> dict:
            count = min(n_documents, count)
            return {"n_documents": n_documents, "count": count, "share": round(count / max(1, n_documents), 4),
                    "sentiment_mean": round(_clamp(mean + 0.2 * (_skew(node_id, key) - 1), -1, 1), 4) if count
                    else None}  # fmt: skip

        counts = {v["value"]: v["count"] for v in column["values"]}
        conditions = [re.split(r"(!=|=)", c, maxsplit=1) for c in (segment.conditions if segment else ())]
        kept = [v for c, op, v in (c for c in conditions if len(c) == 3) if c.strip() == name and op == "="]
        dropped = {v for c, op, v in (c for c in conditions if len(c) == 3) if c.strip() == name and op == "!="}
        own = sum(counts.get(v.strip(), 0) for v in kept) / n_total if kept else 1.0  # this column's part of it
        values = [(v, round(n * fraction / max(own, 1e-9))) for v, n in counts.items()
                  if v not in dropped and (not kept or v in {k.strip() for k in kept})]  # fmt: skip
        values = sorted((v for v in values if v[1]), key=lambda v: (-v[1], v[0]))
        unlisted = 0 if len(counts) >= column["distinct_values"] else round(column["filled"] * fraction) - sum(
            n for _, n in values)  # fmt: skip
        valued = sum(n for _, n in values) + max(0, unlisted)  # the segment's comments with a value
        weights = [n * _skew(node_id, v) for v, n in values] + [max(0, unlisted) * _skew(node_id, "others")]
        hits = _allocate(min(size, round(size * valued / max(1, n_segment))), weights)  # the node's, per value
        shown = [{"value": v, **figures(v, n, hits[i])} for i, (v, n) in enumerate(values[:n_values])]
        rest = valued - sum(n for _, n in values[:n_values])
        rest_count = sum(hits[len(shown) :])
        return {"column": {"name": column["name"], "type": column["type"]},
                "theme": {"id": record["id"], "level": record["level"], "name": record["name"]},
                "segment": segment.describe() if segment else None,
                "overall": {**figures("overall", n_segment, size), "sentiment_mean": mean if size else None},
                "values": shown,
                "others": figures("others", rest, rest_count) if rest > 0 else None}  # fmt: skip

    # ------------------------------------------------------------ edits, uploads, reports

    def edit(self, p: str, node_id: int, change: dict) -> dict:
        """Rename (``name`` or ``label``; empty: the generated name again) and/or hide or show a node."""
        record = self.shown_node(p, node_id)
        if unknown := set(change) - {"name", "label", "hidden"}:
            raise Problem(422, f"body.{min(unknown)}: Extra inputs are not permitted", "validation-error")
        names = {(change[k] or "").strip() for k in ("name", "label") if k in change}
        if len(names) > 1:
            raise Problem(422, "name and label are the same thing: send one of them", "name-and-label-differ")
        if names:
            name = names.pop()
            original = record.pop("original_name", record["name"])
            record.pop("original_label", None)
            if name:
                record["original_name"] = record["original_label"] = original
            record["name"] = record["label"] = name or original
        if change.get("hidden") is not None:
            record["hidden"] = bool(change["hidden"])
        return self.view(p, node_id)

    def merge(self, p: str, target: int, sources: object) -> dict:
        if not isinstance(sources, list) or not sources or not all(isinstance(s, int) for s in sources):
            raise Problem(422, "body.themes: a list of 1 to 500 node ids", "validation-error")
        for node in (target, *sources):
            if node not in self.nodes[p]:
                raise Problem(404, f"no theme {node} in this project", "theme-not-found")
        level = self.nodes[p][target]["level"]
        if across := sorted(s for s in sources if self.nodes[p][s]["level"] != level):
            raise Problem(422, f"theme {target} is of level {level} but {', '.join(map(str, across))} are not: only "
                          "nodes of one level can be merged", "merge-across-levels")  # fmt: skip
        if (root := self.root(p, target)) != target:
            raise Problem(409, f"theme {target} is merged into theme {root}; merge into that one", "theme-merged")
        if target in sources:
            raise Problem(422, "a theme cannot be merged into itself", "merge-into-itself")
        for source in sorted(set(sources)):
            self.merged_into[p][source] = target
        return self.view(p, target)

    def unmerge(self, p: str, node_id: int) -> dict:
        if node_id not in self.nodes[p]:
            raise Problem(404, f"no theme {node_id} in this project", "theme-not-found")
        if self.merged_into[p].pop(node_id, None) is None:
            raise Problem(409, f"theme {node_id} is not merged into another theme", "theme-not-merged")
        return self.view(p, node_id)

    def job(self) -> dict:
        """The upload's job, one scripted step further on each call."""
        documents = {"documents": N2}
        steps = [("queued", None, 0.0, None, {}), ("running", "ingest", 0.05, 95.0, documents),
                 ("running", "embed", 0.2, 80.0, documents), ("running", "embed", 0.4, 60.0, documents),
                 ("running", "sentiment", 0.62, 38.0, documents), ("running", "train", 0.75, 25.0, documents)]  # fmt: skip
        if self.job_fails:
            steps.append(("failed", "train", 0.75, None, documents))
        else:
            steps += [("running", "themes", 0.9, 10.0, documents), ("running", "store", 0.98, 2.0, documents),
                      ("succeeded", "done", 1.0, None, {**documents, "themes": 200, "categories": 12,
                                                        "sub_themes": 60})]  # fmt: skip
        status, stage, progress, eta, counts = steps[min(self.job_calls, len(steps) - 1)]
        self.job_calls += 1
        error = {"type": "/problems/job-failed", "title": "The job failed", "status": 500,
                 "detail": "MemoryError during train: the stub's job fails here"} if status == "failed" else None  # fmt: skip
        return {"id": JOB_ID, "project_id": "p2", "status": status, "stage": stage, "progress": progress,
                "eta_seconds": eta, "counts": counts, "metadata_columns": P2["columns"] if counts else [],
                "error": error, "created_at": "2015-03-30T07:55:00Z",
                "started_at": None if status == "queued" else "2015-03-30T07:55:01Z",
                "finished_at": "2015-03-30T07:57:00Z" if status in ("succeeded", "failed") else None}  # fmt: skip

    def report(self, p: str, name: str, bom: bool) -> str:
        """A small CSV of the report (formula-like cells neutralised as the service's are)."""
        from worker.pipeline.csv_cells import safe_cell

        if name not in ("themes", "document_themes", "span_themes", "documents", "theme_trends", "theme_impact",
                        "theme_tree", "document_nodes", "document_attributes", "alerts"):  # fmt: skip
            raise Problem(404, f"no report {name!r}", "not-found")
        shown = sorted((self.view(p, n) for n in self.shown(p, False)), key=lambda r: (r["level"], -r["size"], r["id"]))
        if name == "themes":
            rows = [["theme_id", "name", "label", "size", "share", "sentiment_mean"]]
            rows += [[r["id"], r["name"], r["label"], r["size"], r["share"], r["sentiment"]["mean"]]
                     for r in shown if r["level"] == 2]  # fmt: skip
        elif name == "theme_tree":
            rows = [["node_id", "level", "parent_id", "name", "size", "share"]]
            rows += [[r["id"], r["level"], self.parent[p].get(r["id"], ""), r["name"], r["size"], r["share"]]
                     for r in shown]  # fmt: skip
        else:
            members = p2_members(self.nodes["p2"][1]) if p == "p2" else []
            rows = [["doc_id", "theme_id", "activation"], *([m["doc_id"], 1, m["activation"]] for m in members[:20])]
        lines = [",".join(_csv_cell(safe_cell(str(v))) for v in row) for row in rows]
        return ("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n"

    def report_token(self, p: str) -> dict:
        token = f"ftr_stub_{p}_0123456789abcdef"
        names = ("themes", "document_themes", "span_themes", "documents", "theme_trends", "theme_impact", "theme_tree",
                 "document_nodes", "document_attributes", "alerts")  # fmt: skip
        return {"token": token, "prefix": token[:12], "project_id": p, "expires_at": "2027-03-01T00:00:00Z",
                "urls": {f"{n}.{e}": f"{STUB_ORIGIN}/v1/projects/{p}/reports/{n}.{e}?token={token}"
                         for n in names for e in ("csv", "parquet")}}  # fmt: skip


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def open_stub_project(browser_context: Any, stub: StubApi, project: str = "p1", viewport: dict | None = None) -> tuple:
    """A page over the stubbed API with the key given and ``project`` opened; the page and its errors (console errors
    and uncaught exceptions). The project is open once its overview shows its categories."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_context.new_page()
    if viewport:
        page.set_viewport_size(viewport)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(f"{STUB_ORIGIN}/**", stub.handle)
    page.goto(f"{STUB_ORIGIN}/")
    page.fill("#api-key", "ft_stub")
    page.locator("#key-form").evaluate("form => form.requestSubmit()")
    page.select_option("#project", project)  # waits for the project list to hold it
    page.click("#open-project")
    page.wait_for_function(f"""() => window.feedbackThemes.project && window.feedbackThemes.project.id === {project!r}
        && window.feedbackThemes.project.name && !document.getElementById('overview').hidden
        && document.querySelector('#category-chart li')""")  # fmt: skip
    return page, errors
