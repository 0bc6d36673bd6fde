"""Names stage: a short human name (2–6 words) for every node of the theme tree, made offline from its members' text.

A name is a phrase the members themselves use ("Lost or delayed baggage", "Debt collector keeps calling", "Runs
small", "Battery life"), chosen by how well it picks out the node's members:

1. **Candidates** (:func:`candidate_phrases`): the frequent phrases of the node's best member units, found by a
   rule-based chunker. The text is normalised as the model sees it (:func:`~worker.pipeline.normalize.model_text`:
   no handles, links or masks), cut at punctuation and at function words (pronouns, auxiliaries, most adverbs);
   articles and possessives are skipped ("lost my bag" → "lost bag"), intensifiers too ("runs very small" → "runs
   small"). A phrase never begins or ends with a function word: connectors (``and or of to for with on in at …``,
   ``is was are were``) only stand inside ("lost or delayed baggage", "service was slow"), negations and "too" may
   begin one ("no response", "too small"), and a particle may end one after a phrasal verb ("size up", "top up").
   Phrases are counted once per unit and merged by word stems (``snowballstemmer``); a phrase always found inside a
   longer one is left out, and so is one never seen whole (only ever cut off before more words). Two frequent
   two-word phrases that differ in a participle are also joined ("lost baggage", "delayed baggage" → "Lost or
   delayed baggage"). A category reads more texts, taken in turn from its themes (:func:`interleave`).
2. **Fidelity** (:func:`fidelity_auc`, arXiv 2502.18469): each candidate is embedded (one batched call for all
   nodes) and scored by the AUC of its cosine similarity to the node's member units against sampled non-members,
   and, where the node has siblings, against the siblings' members, so that a name tells a node from its
   neighbours; the phrase's frequency is a small prior.
3. **Siblings** (:func:`name_nodes`): siblings are named largest first; a candidate with the same word stems as a
   sibling's name is out, and one close to a sibling's name in the embedding is marked down. No candidate left:
   a name made from the node's keywords.

Pure computation: no model is loaded here (the caller passes ``encode``), no torch, no settings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from threadpoolctl import threadpool_limits

from worker.pipeline.normalize import MASK, MASKED_AMOUNT, model_text


@dataclass(frozen=True)
class NameOptions:
    """How names are made."""

    min_words: int = 2
    max_words: int = 6
    n_texts: int = 40  # best member units read for candidates
    n_candidates: int = 25  # candidates embedded per node
    n_negatives: int = 400  # non-member units sampled for the AUC (members are sampled to as many)
    seed: int = 0
    sibling_weight: float = 0.25  # share of the score from the AUC against the siblings' members
    frequency_weight: float = 0.1  # prior: log(units using the candidate) / log(n_texts), times this
    length_penalty: float = 0.01  # per word beyond three
    # near-duplicates of a sibling's name: cosine above sibling_similarity lowers the score, by up to this much
    sibling_similarity: float = 0.7
    sibling_similarity_penalty: float = 0.1
    max_connectors: int = 2  # connector words (and, of, was, …) inside one phrase


@dataclass
class NodeText:
    """What naming needs of one node."""

    texts: list[str]  # the node's member unit texts, best (highest activation) first
    members: np.ndarray  # the node's member unit rows in the unit_vectors matrix
    siblings: int | None = None  # nodes with the same key are siblings: their names differ
    keywords: list[str] = field(default_factory=list)  # top c-TF-IDF keywords (fallback material)
    # texts read for candidates (None: NameOptions.n_texts); a category reads more, e.g. 200 texts taken in turn
    # from its themes' best (:func:`interleave`), so that its name is what its themes share
    n_texts: int | None = None


Encode = Callable[[list[str]], np.ndarray]

# ---------------------------------------------------------------------------------------------------------------
# Word classes of the chunker


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: articles: kept after a preposition or "worth" ("on the phone", "worth the money"), else skipped after a verb
#: ("lost the bag" → "lost bag"); possessives: skipped after a verb ("lost my bag" → "lost bag"); elsewhere both
#: cut the phrase ("sushi my husband")
ARTICLES = frozenset({"the", "a", "an"})
POSSESSIVES = _set("my our your their his her its ur")
#: skipped anywhere: the phrase goes on across them ("runs very small" → "runs small")
INTENSIFIERS = _set("very really super extremely quite totally absolutely truly incredibly definitely highly bit")
SKIPPED = ARTICLES | POSSESSIVES | INTENSIFIERS
#: only inside a phrase
CONNECTORS = _set("and or of to for with on in at from by about after before without into over per is was are were")
#: connectors an article is kept after ("on the phone"; "soft and the colour" → "soft and colour")
PREPOSITIONS = CONNECTORS - _set("and or is was are were")
NEGATIONS = _set(
    "no not never cannot can't don't doesn't didn't won't wouldn't isn't wasn't aren't weren't haven't hasn't "
    "hadn't couldn't shouldn't dont cant doesnt didnt wont wouldnt isnt wasnt arent havent hasnt couldnt"
)
#: may begin a phrase and stand inside one, never end it: negations, "too", verbs that need more ("runs [small]")
NO_END = NEGATIONS | _set("too get gets got getting keep keeps kept pretty run runs running ran")
#: end a phrase after a phrasal verb ("size up", "log in", "sold out")
PARTICLES = _set("up down out off in on over through away")
#: "in" and "on" end a phrase only after these ("log in", "tried on"; not "top in")
IN_ON_VERBS = _set(
    "log logged logging logs sign signed signing check checked checking checks try tried trying tries cash cashed "
    "turn turned hold held put hang hung hanging fill filled move moved drop dropped"
)
PHRASAL_VERBS = _set(
    "size sized sizes sizing log logged logging sign signed signing top topped topping check checked checking "
    "call called calling hang hung hanging cut cuts sell sold selling turn turned turns pick picked set run runs "
    "running ran fill filled look looks zip zips zipped button buttons wash washed follow followed roll rolled "
    "ride rides riding cash cashed pull pulled pulls fall falls fell falling break breaks broke broken show showed "
    "shows lock locked freeze froze frozen shut shuts work works worked find found sort sorted mess messed screw "
    "screwed mix mixed figure send sent give gave take took taken wear wore worn stretch stretched stretches blow "
    "blown pop pops popped tie tied fold folded hold held lay laid"
)
#: verbs an article or possessive may follow inside a phrase (besides phrasal verbs and words in -ed, -ing)
VERBS = _set(
    "lose loses lost get gets got take takes took make makes change cancel order orders try buy buys bought send "
    "leave left pay pays paid use uses give gives find reset block activate verify transfer receive return book "
    "miss keep keeps kept worth enjoy enjoyed recommend"
)
#: fewer frequent phrases than this: phrases used once (at most RARE_MAX_WORDS words) are candidates too
MIN_FREQUENT = 5
RARE_MAX_WORDS = 3
#: participles not in -ed or -ing: "Lost bag" reads as a heading where "Lose bag" does not
IRREGULAR_PARTICIPLES = _set(
    "lost paid sent left bought told got kept made found held sold stolen broken taken given worn done gone seen cut "
    "put set hung spent won shrunk torn stuck"
)
#: irregular verb forms stemmed as their base form, so that "lost or losing" counts as two forms of one word
IRREGULAR_FORMS = {
    "lost": "lose", "paid": "pay", "sent": "send", "bought": "buy", "told": "tell", "got": "get", "kept": "keep",
    "made": "make", "found": "find", "held": "hold", "sold": "sell", "stolen": "steal", "stole": "steal",
    "broken": "break", "broke": "break", "taken": "take", "took": "take", "given": "give", "gave": "give",
    "worn": "wear", "wore": "wear", "gone": "go", "went": "go", "seen": "see", "saw": "see", "hung": "hang",
    "spent": "spend", "shrunk": "shrink", "shrank": "shrink", "torn": "tear", "tore": "tear", "flew": "fly",
    "flown": "fly", "ate": "eat", "eaten": "eat", "ran": "run", "came": "come", "felt": "feel", "bit": "bite",
}  # fmt: skip
#: describing words that may stand on either side of "x or y" besides participles ("late or cancelled flight")
DESCRIBING = _set("missing late wrong rude slow long short small tight loose big large poor bad")
#: a connector may begin a phrase before these words ("on hold", "out of stock")
START_PAIRS = frozenset({("on", "hold"), ("on", "time"), ("on", "sale"), ("in", "stock"), ("out", "of"),
                         ("in", "store"), ("in", "person"), ("on", "board")})  # fmt: skip
#: break a phrase: pronouns, auxiliaries, conjunctions, question words, most adverbs, chat words, and the pieces
#: of contractions that keyword counting leaves ("don", "ll", "ve")
STOP_WORDS = _set(
    """i me myself we us ourselves you yourself yourselves he him himself she herself it itself they them themselves
    this that these those who whom which what whose where when why how there here i'm i've i'd i'll you're you've
    you'd you'll he's she's it's that's there's they're they've we're we've we'd we'll what's who's let's im ive
    am be been being have has had having do does did doing done will would shall should can could may might must
    but if because so than then though although while whether since unless as nor yet either neither both also
    just even still already again ever now only rather much more most many few less least some any all each every
    other another such own same else lot lots thing things stuff something anything nothing everything someone
    anyone everyone nobody somebody anybody one ones way always often sometimes usually maybe perhaps actually
    literally probably seriously anyway anyways however though yes yeah yep ok okay oh ah wow lol omg hi hello hey
    please pls plz thanks thank thx ty u r via etc ie eg like liked likes love loved loves hate hated want wanted
    wants need needed needs think thought know knew guess hope wish say said says tell going gonna wanna gotta
    make made go went gone come came let well seem seems seemed until till ago yesterday today tomorrow tonight
    recently currently soon later earlier don doesn didn isn wasn weren aren couldn wouldn shouldn haven hasn hadn
    won ll ve re"""
)
TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*|[^\w\s]")
HANDLE = re.compile(r"(?<![\w@])@\w")
URL_PIECE = re.compile(r"https?|://|\bwww\b|www\.|\.(?:com|net|org|co|ly|io)\b|^(?:com|http|https|www)$", re.IGNORECASE)
MASK_PIECE = re.compile(rf"{MASK}|{MASKED_AMOUNT}|\bX{{1,2}}/|/X{{1,2}}\b|[{{}}]", re.IGNORECASE)
BARE_NUMBER = re.compile(r"^[^\w]*\d[\d\W]*$")
#: last-resort names, all different: adjective × noun
GENERIC_NAMES = tuple(
    f"{adjective} {noun}"
    for noun in ("feedback", "remarks", "comments", "topics", "points", "notes", "mentions", "matters", "subjects")
    for adjective in ("Miscellaneous", "General", "Assorted", "Remaining", "Mixed", "Various", "Further", "Sundry")
)


# ---------------------------------------------------------------------------------------------------------------
# Words


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of a lower-case word ("delayed" → "delay", "bags" → "bag"), irregular verb forms
    as their base ("lost" → "lose")."""
    word = word.replace("’", "'")
    return _stemmer().stemWord(IRREGULAR_FORMS.get(word, word))


def _is_function_word(word: str) -> bool:
    return word in STOP_WORDS or word in SKIPPED or word in CONNECTORS or word in NO_END or word in PARTICLES


def _words(name: str) -> list[str]:
    return [w.strip(".,;:!?\"'()").lower().replace("’", "'") for w in name.split()]


def _content_stems(name: str) -> tuple[str, ...]:
    """The stems of a name's words that carry meaning, sorted: two names with the same are the same name. Content
    words, negations and particles count ("Card not working" is not "Card working", "Log in" not "Log"); articles,
    connectors and stop words do not ("Lost the bag" is "Lost bag", "Food was good" is "Food is good")."""
    words = _words(name)
    return tuple(sorted(stem(w) for w in words if w and w not in STOP_WORDS and w not in SKIPPED
                        and (w not in CONNECTORS or w in PARTICLES)))  # fmt: skip


def junk_reason(name: str, options: NameOptions = NameOptions()) -> str | None:
    """Why a name is junk (None: fine): a mask (xxxx, XX/XX, {$..}), a @handle, a URL piece (http, www, .com), a bare
    number, only stop words, two forms of one word (bag/bags, delay/delayed: same stem), a function word at either
    end, fewer than ``min_words`` or more than ``max_words`` words."""
    raw = name.split()
    if MASK_PIECE.search(name):
        return "mask"
    if HANDLE.search(name):
        return "handle"
    if any(URL_PIECE.search(w) for w in raw):
        return "url"
    if any(BARE_NUMBER.match(w) for w in raw):
        return "bare number"
    if len(raw) < options.min_words:
        return f"fewer than {options.min_words} words"
    if len(raw) > options.max_words:
        return f"more than {options.max_words} words"
    words = _words(name)
    content = [w for w in words if w and not _is_function_word(w)]
    if not content:
        return "only stop words"
    stems = [stem(w) for w in content]
    if len(set(stems)) < len(stems):
        return "two forms of one word"
    if not _can_start(words, 0) or not _can_end(words, len(words) - 1):
        return "function word at an end"
    return None


def _can_start(words: Sequence[str], i: int) -> bool:
    word = words[i]
    if word in NO_END:
        return True
    if word in CONNECTORS or word in PARTICLES:
        return i + 1 < len(words) and (word, words[i + 1]) in START_PAIRS
    return bool(word) and word not in STOP_WORDS and word not in SKIPPED


def _can_end(words: Sequence[str], j: int) -> bool:
    word = words[j]
    if word in PARTICLES:
        return j > 0 and _particle_after(words[j - 1], word)
    return bool(word) and not _is_function_word(word)


def _particle_after(verb: str, particle: str) -> bool:
    """Whether the particle completes the verb ("size up", "log in"): a phrase may end on it."""
    return verb in (IN_ON_VERBS if particle in ("in", "on") else PHRASAL_VERBS)


# ---------------------------------------------------------------------------------------------------------------
# Candidates


@dataclass
class _Unit:
    """One text as the chunker sees it: its word runs (lower case), per run the positions of words that took an
    object (an article or possessive was skipped after them: verbs), and each word's written forms."""

    runs: list[list[str]]
    verbs: list[set[int]]
    forms: list[tuple[str, str]]  # (lower, as written) of words not at the start of a sentence
    # (key, phrase, whether it stands whole there: see _Chunker.unit), filled by the chunker
    phrases: list[tuple[tuple[str, ...], tuple[str, ...], bool]] | None = None


def _tokenize(text: str) -> _Unit:
    """Word runs of a text (module docstring): cut at punctuation, words with digits, single letters and stop words."""
    runs: list[list[str]] = [[]]
    verbs: list[set[int]] = [set()]
    forms: list[tuple[str, str]] = []

    def cut() -> None:
        if runs[-1]:
            runs.append([])
            verbs.append(set())

    sentence_start = True
    for token in TOKEN.findall(model_text(text).replace("&", " and ")):
        word = token.lower().replace("’", "'")
        if not token.isalpha() and not _hyphenated(token) or (len(token) == 1 and word != "a"):
            cut()
            sentence_start = sentence_start or token in ".!?"
            continue
        if not sentence_start:
            forms.append((word, token))
        sentence_start = False
        run = runs[-1]
        previous = run[-1] if run else None
        if word in INTENSIFIERS:
            continue
        if word in ARTICLES and previous is not None and (previous in PREPOSITIONS or previous == "worth"):
            run.append(word)
        elif word in ARTICLES or word in POSSESSIVES:
            if previous is None or not _takes_object(previous):
                cut()
            elif previous not in CONNECTORS:
                verbs[-1].add(len(run) - 1)
        elif word in STOP_WORDS:
            cut()
        else:
            run.append(word)
    if not runs[-1]:
        runs.pop()
        verbs.pop()
    return _Unit(runs, verbs, forms)


def _hyphenated(token: str) -> bool:
    """A word with hyphens or apostrophes but no digits ("top-up", "can't"): a word; "ua871", "2nd" are not."""
    return token[0].isalpha() and not any(c.isdigit() for c in token)


def _takes_object(word: str) -> bool:
    """Whether an article or possessive after the word may be skipped within a phrase (a verb or connector)."""
    return (word in CONNECTORS or word in VERBS or word in PHRASAL_VERBS or word in NO_END
            or word.endswith(("ed", "ing")))  # fmt: skip


def _spans(
    run: Sequence[str], options: NameOptions, verbs: set[int] | frozenset[int] = frozenset()
) -> Iterable[tuple[int, int]]:
    """The (first, last) positions of every phrase of ``min_words``..``max_words`` words of a word run that may
    begin and end where it does, with at most ``max_connectors`` connectors, never two in a row; none begins with a
    verb in the base form that took an object (``verbs``: "lose my bag" gives no "Lose bag", "lost my bag" gives
    "Lost bag")."""
    n = len(run)
    for i in range(n):
        if not _can_start(run, i) or (i in verbs and not _participle(run[i])):
            continue
        connectors = 0
        for j in range(i + 1, min(n, i + options.max_words)):
            word = run[j]
            if word in ARTICLES:
                continue
            if word in CONNECTORS and not (word in PARTICLES and _particle_after(run[j - 1], word)):
                connectors += 1
                if connectors > options.max_connectors or run[j - 1] in CONNECTORS:
                    break
                continue
            if j + 1 - i >= options.min_words and _can_end(run, j):
                yield i, j


class _Chunker:
    """Tokenizes each distinct text once (texts are shared by a theme, its category and its sub-themes)."""

    def __init__(self, options: NameOptions) -> None:
        self.options = options
        self.units: dict[str, _Unit] = {}

    def unit(self, text: str) -> _Unit:
        """The text tokenized, with its phrases and their keys (word stems, articles left out)."""
        unit = self.units.get(text)
        if unit is None:
            unit = self.units[text] = _tokenize(text)
            unit.phrases = []
            for run, verbs in zip(unit.runs, unit.verbs):
                stems = [None if w in ARTICLES else stem(w) for w in run]
                for i, j in _spans(run, self.options, verbs):
                    key = tuple(s for s in stems[i : j + 1] if s is not None)
                    # ends where the run does (but not on a verb whose object was cut off) or before a connector
                    whole = (j + 1 == len(run) and j not in verbs) or (j + 1 < len(run) and run[j + 1] in CONNECTORS)
                    unit.phrases.append((key, tuple(run[i : j + 1]), whole))
        return unit

    def candidates(self, texts: Sequence[str], limit: int | None = None,
                   n_texts: int | None = None) -> list[tuple[str, int]]:  # fmt: skip
        """(name, number of units using it) of the phrases of the best ``n_texts`` (default: the options') distinct
        texts, most frequent first, junk and phrases always found inside a longer one left out; the first ``limit``
        (None: all)."""
        n_texts = n_texts or self.options.n_texts
        units, seen = [], set()
        for text in texts:
            norm = " ".join(text.lower().split())
            if norm in seen:
                continue
            seen.add(norm)
            units.append(self.unit(text))
            if len(units) >= n_texts:
                break
        counts: Counter[tuple[str, ...]] = Counter()
        first: dict[tuple[str, ...], int] = {}
        surfaces: dict[tuple[str, ...], Counter[tuple[str, ...]]] = {}
        forms: dict[str, Counter[str]] = {}
        whole: set[tuple[str, ...]] = set()
        for position, unit in enumerate(units):
            for key, phrase, ends in unit.phrases or ():
                if key not in first:
                    first[key] = position
                    surfaces[key] = Counter()
                surfaces[key][phrase] += 1
                if ends:
                    whole.add(key)
            counts.update({key for key, _, _ in unit.phrases or ()})
            for word, written in unit.forms:
                if word not in forms:
                    forms[word] = Counter()
                forms[word][written] += 1
        # a phrase stands whole somewhere: not only ever cut off before more words ("tartare is a great [starter]")
        counts = Counter({key: count for key, count in counts.items() if key in whole})
        min_count = 2 if len(units) >= 4 else 1
        frequent = _closed({k: c for k, c in counts.items() if c >= min_count})
        ranked = sorted(frequent.items(), key=lambda kc: (-kc[1], first[kc[0]], -len(kc[0]), kc[0]))
        # too few frequent phrases: the short phrases of the best units too
        rare = (
            []
            if len(ranked) >= MIN_FREQUENT
            else sorted(
                (k for k, c in counts.items() if c < min_count and len(k) <= RARE_MAX_WORDS),
                key=lambda k: (first[k], len(k), k),
            )
        )
        out, names = [], set()
        for key, count in [*ranked, *((k, counts[k]) for k in rare)]:
            if (count < min_count and len(out) >= self.options.n_candidates) or (
                limit is not None and len(out) >= limit
            ):
                break
            phrase = min(surfaces[key].items(), key=lambda pc: (-pc[1], pc[0]))[0]
            name = heading(phrase, forms)
            stems = _content_stems(name)
            if stems in names or junk_reason(name, self.options):
                continue
            names.add(stems)
            out.append((name, count))
        return out


def _closed(counts: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """The phrases not always found inside one longer phrase (same count)."""
    covered = set()
    for key, count in counts.items():
        n = len(key)
        for size in range(2, n):
            for i in range(n - size + 1):
                sub = key[i : i + size]
                if counts.get(sub) == count:
                    covered.add(sub)
    return {k: c for k, c in counts.items() if k not in covered}


def heading(phrase: Sequence[str], forms: dict[str, Counter[str]] | None = None) -> str:
    """A phrase written as a heading: first letter upper case, acronyms and proper nouns as the texts write them
    (``forms``: per lower-case word the counts of its written forms away from a sentence start)."""
    words = [_written(w, (forms or {}).get(w)) for w in phrase]
    words = ["I" if w == "i" else w for w in words]
    first = words[0]
    words[0] = first[:1].upper() + first[1:]
    return " ".join(words)


def _written(word: str, forms: Counter[str] | None) -> str:
    """A word as the texts mostly write it mid-sentence (2 of 3, twice or more) when that is an acronym (at most
    five letters: longer capitals are shouting) or a capitalised name."""
    if not forms:
        return word
    written, count = forms.most_common(1)[0]
    if written == word or count < 2 or 3 * count < 2 * sum(forms.values()):
        return word
    if written.isupper():
        return written if len(written) <= 5 else word
    return written if written[:1].isupper() else word


def interleave(text_lists: Sequence[Sequence[str]], n: int = NameOptions().n_texts) -> list[str]:
    """The first ``n`` texts of several best-first lists taken in turn (the first of each, then the second of each,
    …): the texts to name a category by, so that its name draws on all its themes, not only on its largest."""
    out: list[str] = []
    for depth in range(max((len(texts) for texts in text_lists), default=0)):
        for texts in text_lists:
            if depth < len(texts):
                out.append(texts[depth])
                if len(out) >= n:
                    return out
    return out


def candidate_phrases(texts: Sequence[str], options: NameOptions = NameOptions()) -> list[str]:
    """Candidate noun and verb phrases of 2–6 words from the texts (best first: only the first ``n_texts`` distinct
    ones are read), most frequent first, junk removed, written as headings."""
    return [name for name, _ in _Chunker(options).candidates(texts)]


def _either_or(ranked: Sequence[tuple[str, int]], cap: int, limit: int = 8, most: int = 3) -> list[tuple[str, int]]:
    """Either-or names: "Lost or delayed baggage" from "lost baggage" and "delayed baggage", "Flight delayed or
    cancelled" from "flight delayed" and "flight cancelled": pairs of two-word candidates among the first ``limit``
    (used twice or more) that share a word and differ in a participle or a describing word (:func:`_describes`);
    counted as the sum of the two (at most ``cap``)."""
    two = [(name.split(), count) for name, count in ranked[:limit] if len(name.split()) == 2 and count >= 2]
    out: list[tuple[str, int]] = []
    for a in range(len(two)):
        for b in range(a + 1, len(two)):
            (w1, c1), (w2, c2) = two[a], two[b]
            if w1[0].lower() in NEGATIONS or w2[0].lower() in NEGATIONS:
                continue
            if stem(w1[1].lower()) == stem(w2[1].lower()) and all(_describes(w[0]) for w in (w1, w2)):
                phrase = [w1[0], "or", _uncap(w2[0]), w1[1]]
            elif stem(w1[0].lower()) == stem(w2[0].lower()) and all(_describes(w[1]) for w in (w1, w2)):
                phrase = [w1[0], w1[1], "or", w2[1]]
            else:
                continue
            name = " ".join(phrase)
            if junk_reason(name) is None:
                out.append((name, min(cap, c1 + c2)))
            if len(out) >= most:
                return out
    return out


def _describes(word: str) -> bool:
    """Whether a word may be one side of "x or y": a participle or one of a few describing words."""
    word = word.lower()
    return _participle(word) or word in DESCRIBING


def _participle(word: str) -> bool:
    return word.endswith(("ed", "ing")) or word in IRREGULAR_PARTICIPLES


def _uncap(word: str) -> str:
    """A heading's first word back in lower case, unless it is an acronym or a name ("Lost" → "lost", "ATM")."""
    return word.lower() if word[1:] == word[1:].lower() and word[:1].isupper() else word


def keyword_names(keywords: Sequence[str], options: NameOptions = NameOptions()) -> list[str]:
    """Fallback names from c-TF-IDF keywords: the keyword phrases that are fine names, then pairs of single keywords
    ("Sizing and fit"), junk-free and of 2+ words."""
    out: list[str] = []
    for keyword in keywords:
        name = heading(keyword.split())
        if junk_reason(name, options) is None and name not in out:
            out.append(name)
    singles = [k for k in keywords if len(k.split()) == 1 and not _is_function_word(k.lower())]
    for a in range(len(singles)):
        for b in range(a + 1, len(singles)):
            name = heading([singles[a], "and", singles[b]])
            if junk_reason(name, options) is None and name not in out:
                out.append(name)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Fidelity


def _rows(unit_vectors, rows: np.ndarray) -> np.ndarray:
    return np.asarray(unit_vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)


def units_count(unit_vectors) -> int:
    """How many units (rows) ``unit_vectors`` has: an array, or an object with ``inverse`` (DocumentVectors)."""
    shape = getattr(unit_vectors, "shape", None)
    if shape is not None:
        return int(shape[0])
    inverse = getattr(unit_vectors, "inverse", None)  # worker.pipeline.themes.DocumentVectors
    return len(inverse) if inverse is not None else len(unit_vectors)


def auc_rows(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per row, the AUC of the scores ``positive`` (rows × P) against ``negative`` (rows × N): the chance that a
    random positive scores above a random negative (ties count a half). NaN without positives or negatives. Scores
    are cosines (within [-1, 1]): the rows are shifted apart and searched in one sorted array."""
    rows, n_pos = positive.shape
    n_neg = negative.shape[1]
    if n_pos == 0 or n_neg == 0:
        return np.full(rows, np.nan)
    shift = 4.0 * np.arange(rows, dtype=np.float64)[:, None]
    sorted_negative = np.sort((np.asarray(negative, dtype=np.float64) + shift).ravel())
    shifted = (np.asarray(positive, dtype=np.float64) + shift).ravel()
    offset = np.repeat(np.arange(rows) * n_neg, n_pos)
    below = np.searchsorted(sorted_negative, shifted, "left") - offset
    not_above = np.searchsorted(sorted_negative, shifted, "right") - offset
    return (below + not_above).reshape(rows, n_pos).sum(axis=1) / (2.0 * n_pos * n_neg)


def fidelity_auc(name_vector: np.ndarray, unit_vectors, members: np.ndarray, non_members: np.ndarray) -> float:
    """AUC of the cosine similarity of the name's embedding to units: members against non-members (arXiv
    2502.18469). Vectors are unit length, so the dot product is the cosine."""
    vector = np.asarray(name_vector, dtype=np.float32).reshape(1, -1)
    positive = vector @ _rows(unit_vectors, members).T
    negative = vector @ _rows(unit_vectors, non_members).T
    return float(auc_rows(positive, negative)[0])


def sample_non_members(n_units: int, members: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct unit rows outside ``members``, drawn at random (sorted)."""
    members = np.unique(np.asarray(members, dtype=np.int64))
    free = n_units - len(members)
    if free <= 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    if free <= 4 * n:
        pool = np.setdiff1d(np.arange(n_units), members, assume_unique=True)
        return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))
    picked = np.zeros(0, dtype=np.int64)
    while len(picked) < n:
        draw = rng.integers(0, n_units, size=2 * n)
        draw = draw[~np.isin(draw, members, assume_unique=False)]
        picked = np.unique(np.concatenate([picked, draw]))
    return np.sort(rng.permutation(picked)[:n])


def _sample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    return rows if len(rows) <= n else np.sort(rng.choice(rows, size=n, replace=False))


# ---------------------------------------------------------------------------------------------------------------
# Naming


@dataclass
class _Scored:
    names: list[str]
    scores: np.ndarray  # per name: fidelity score (+ prior)
    vectors: np.ndarray  # per name: its embedding


def name_nodes(nodes: Sequence[NodeText], unit_vectors, encode: Encode,
               options: NameOptions = NameOptions()) -> list[str]:  # fmt: skip
    """One name per node (module docstring): candidates ranked by how well they pick out the node's members (AUC
    against sampled non-members and against the siblings' members) and how distinct they are from their siblings'
    names; never junk; never equal (same stems) to a sibling's name; made from keywords when no candidate is left.
    ``encode`` is called at most once, with every candidate of every node."""
    if not nodes:
        return []
    chunker = _Chunker(options)
    pools = [_pool(node, chunker, options) for node in nodes]
    distinct = sorted({name for pool in pools for name, _ in pool})
    vectors = _encode(encode, distinct)
    index = {name: i for i, name in enumerate(distinct)}
    n_units = units_count(unit_vectors)
    sibling_rows = _sibling_members(nodes)
    scored = []
    with threadpool_limits(limits=1, user_api="blas"):  # many small products: threads only cost here
        for i, (node, pool) in enumerate(zip(nodes, pools)):
            rng = np.random.default_rng([options.seed, i])
            siblings = None if node.siblings is None else np.setdiff1d(sibling_rows[node.siblings], node.members)
            scored.append(_score(node, pool, vectors, index, unit_vectors, n_units, siblings, rng, options))
    return _assign(nodes, scored, options)


def _pool(node: NodeText, chunker: _Chunker, options: NameOptions) -> list[tuple[str, int]]:
    """The node's candidates with their counts: its phrases (then "x or y" pairs of them), else keyword names."""
    ranked = chunker.candidates(node.texts, limit=options.n_candidates, n_texts=node.n_texts)
    pool = ranked[: options.n_candidates]
    known = {_content_stems(name) for name, _ in pool}
    either = [c for c in _either_or(ranked, cap=_texts_read(node, options)) if _content_stems(c[0]) not in known]
    pool = (pool[: max(0, options.n_candidates - len(either))] + either)[: options.n_candidates]
    if not pool:
        pool = [(name, 0) for name in keyword_names(node.keywords, options)[: options.n_candidates]]
    return pool


def _encode(encode: Encode, names: list[str]) -> np.ndarray:
    if not names:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = np.asarray(encode(names), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _sibling_members(nodes: Sequence[NodeText]) -> dict[int, np.ndarray]:
    """Per sibling key, the union of its nodes' members."""
    parts: dict[int, list[np.ndarray]] = {}
    for node in nodes:
        if node.siblings is not None:
            parts.setdefault(node.siblings, []).append(np.asarray(node.members, dtype=np.int64))
    return {key: np.unique(np.concatenate(rows)) for key, rows in parts.items()}


def _score(
    node: NodeText,
    pool: list[tuple[str, int]],
    vectors: np.ndarray,
    index: dict[str, int],
    unit_vectors,
    n_units: int,
    siblings: np.ndarray | None,
    rng: np.random.Generator,
    options: NameOptions,
) -> _Scored:
    """Fidelity of each candidate of one node: AUC against random non-members, mixed with the AUC against the
    siblings' members where there are any, plus the frequency prior."""
    names = [name for name, _ in pool]
    if not names:
        return _Scored([], np.zeros(0), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0)))
    cand = vectors[[index[n] for n in names]]
    members = _sample(node.members, options.n_negatives, rng)
    if len(members) == 0:
        return _Scored(names, np.zeros(len(names)), cand)
    negatives = sample_non_members(n_units, node.members, options.n_negatives, rng)
    against = np.zeros(0, dtype=np.int64) if siblings is None else _sample(siblings, options.n_negatives, rng)
    sims = cand @ _rows(unit_vectors, np.concatenate([members, negatives, against])).T  # one product per node
    positive, others = sims[:, : len(members)], sims[:, len(members) :]
    score = np.nan_to_num(auc_rows(positive, others[:, : len(negatives)]), nan=0.5)
    if len(against):
        sibling_auc = np.nan_to_num(auc_rows(positive, others[:, len(negatives) :]), nan=0.5)
        score = (1 - options.sibling_weight) * score + options.sibling_weight * sibling_auc
    return _Scored(names, score + _prior(pool, _texts_read(node, options), options), cand)


def _texts_read(node: NodeText, options: NameOptions) -> int:
    return min(len(node.texts), node.n_texts or options.n_texts)


def _prior(pool: list[tuple[str, int]], n_texts: int, options: NameOptions) -> np.ndarray:
    """What a candidate gets before fidelity: more for phrases many of the ``n_texts`` units read use, less for long
    ones."""
    counts = np.array([max(count, 1) for _, count in pool], dtype=np.float64)
    frequency = np.log(counts) / np.log(max(2, n_texts))
    words = np.array([len(name.split()) for name, _ in pool], dtype=np.float64)
    return options.frequency_weight * frequency - options.length_penalty * np.clip(words - 3, 0, None)


def _assign(nodes: Sequence[NodeText], scored: list[_Scored], options: NameOptions) -> list[str]:
    """The best candidate of each node, siblings named largest first: a sibling's name (same stems) is out, and one
    whose cosine to a sibling's name is above ``sibling_similarity`` is marked down (up to
    ``sibling_similarity_penalty`` for the same embedding)."""
    names: list[str | None] = [None] * len(nodes)
    groups: dict[object, list[int]] = {}
    for i, node in enumerate(nodes):
        groups.setdefault(("sib", node.siblings) if node.siblings is not None else ("own", i), []).append(i)
    for members in groups.values():
        taken: set[tuple[str, ...]] = set()
        taken_vectors: list[np.ndarray] = []
        for i in sorted(members, key=lambda k: (-len(nodes[k].members), k)):
            names[i] = _pick(nodes[i], scored[i], taken, taken_vectors, options)
            taken.add(_content_stems(names[i]))
    return [n or GENERIC_NAMES[0] for n in names]  # every node is named above


def _pick(node: NodeText, scored: _Scored, taken: set[tuple[str, ...]], taken_vectors: list[np.ndarray],
          options: NameOptions) -> str:  # fmt: skip
    """The node's best candidate not taken by a sibling, else a keyword name, else a generic one."""
    score = scored.scores.astype(np.float64).copy()
    if taken_vectors and len(score):
        closeness = (scored.vectors @ np.stack(taken_vectors).T).max(axis=1)
        excess = np.clip(closeness - options.sibling_similarity, 0, None) / max(1e-9, 1 - options.sibling_similarity)
        score -= options.sibling_similarity_penalty * excess
    for k in np.argsort(-score, kind="stable"):
        name = scored.names[k]
        if _content_stems(name) not in taken:
            taken_vectors.append(scored.vectors[k])
            return name
    for name in [*keyword_names(node.keywords, options), *GENERIC_NAMES]:
        if _content_stems(name) not in taken:
            return name
    return GENERIC_NAMES[0]


def subject_name(keywords: Sequence[str], taken: set[str]) -> str | None:
    """A category's name from its first four keywords (c-TF-IDF order): its first two subject words (no sentiment of
    their own in VADER's lexicon; no stop word, connector or adverb in -ly) joined by "and" ("Service and staff");
    ``None`` when fewer than two are left. A pair already in ``taken`` (a sibling's) is skipped; the chosen pair is
    added to it."""
    from worker.pipeline.sentiment import _analyzer

    lexicon = _analyzer().lexicon
    words: list[str] = []
    for keyword in keywords[:4]:
        for word in keyword.lower().split():
            if (word.isalpha() and len(word) > 2 and word not in lexicon and not _is_function_word(word)
                    and not word.endswith("ly")
                    and word not in INTENSIFIERS and all(stem(word) != stem(w) for w in words)):  # fmt: skip
                words.append(word)
    for i, first in enumerate(words):
        for second in words[i + 1 :]:
            name = f"{first.capitalize()} and {second}"
            if name not in taken and junk_reason(name) is None:
                taken.add(name)
                return name
    return None


def content_stems(name: str) -> tuple[str, ...]:
    """The stems of a name's content words (sorted): two names with the same ones say the same thing."""
    return _content_stems(name)
