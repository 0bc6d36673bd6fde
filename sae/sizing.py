"""Default sizes and training lengths derived from the corpus size.

Dictionary size: one latent per 24 texts, clamped to [16, 1024], with K=3 active latents per text (M=42 for
1k texts, 128 for ~3k, 333 for 8k, 1024 from ~25k). On labelled feedback a small dictionary with small K
recovers the gold intents better than the larger M=256/K=8 rule of thumb (HypotheSAEs-style) and keeps themes
precise; K=3 rather than K=2 keeps reconstruction useful on long multi-topic reviews (figures: ``python -m bench
quality`` and ``python -m bench core``, docs/benchmarks.md).

Training length is a *sample budget*: about ``DEFAULT_SAMPLE_BUDGET`` examples are
shown in total, so small corpora get many epochs and large ones few (3..200 epochs).
The decoder starts at k-means centroids, so a short budget suffices.
"""

from __future__ import annotations

import math

DEFAULT_SAMPLE_BUDGET = 150_000
MIN_EPOCHS = 3
MAX_EPOCHS = 200
#: Dead-latent window cap: a latent is dead after this many samples without firing.
DEAD_SAMPLES_CAP = 1_000_000

#: Texts per latent, bounds of the dictionary size, and K.
DOCS_PER_LATENT = 24
MIN_LATENTS, MAX_LATENTS = 16, 1024
DEFAULT_K = 3


def default_size(n_docs: int) -> tuple[int, int]:
    """Return ``(n_latents, k)`` for a corpus of ``n_docs`` texts (see module docstring)."""
    if n_docs < 0:
        raise ValueError("n_docs must be non-negative")
    return _clamp(round(n_docs / DOCS_PER_LATENT), MIN_LATENTS, MAX_LATENTS), DEFAULT_K


def default_growth(n_docs: int, n_latents: int) -> int:
    """New latents appended by ``partial_fit``: enough to reach the dictionary size the
    grown corpus calls for, and at least one eighth of the current size (room for new
    concepts), without passing twice the size the corpus calls for."""
    target = default_size(n_docs)[0]
    wanted = max(target - n_latents, math.ceil(n_latents / 8))
    return max(0, min(wanted, 2 * target - n_latents))


def default_epochs(n_train: int, max_samples: int | None = None) -> int:
    """Epochs for a sample budget.

    Without ``max_samples``: ``clamp(round(DEFAULT_SAMPLE_BUDGET / n_train), 3, 200)``.
    An explicit ``max_samples`` is taken as the budget and only floored at one epoch.
    """
    n_train = max(int(n_train), 1)
    if max_samples is not None:
        if max_samples <= 0:
            raise ValueError("max_samples must be positive")
        return max(1, round(max_samples / n_train))
    return min(max(round(DEFAULT_SAMPLE_BUDGET / n_train), MIN_EPOCHS), MAX_EPOCHS)


def default_batch_size(n_train: int) -> int:
    """Batch size: at least ~8 steps per epoch for small data, 256 up to ~32k rows,
    then growing with the corpus (``n_train / 128``, power of two) up to 4096."""
    n_train = max(int(n_train), 1)
    if n_train < 32_768:
        return _clamp(_pow2_floor(n_train / 8), 32, 256)
    return _clamp(_pow2_floor(n_train / 128), 256, 4096)


def default_dead_steps(n_train: int, batch_size: int) -> int:
    """Steps without firing after which a latent counts as dead: about one epoch
    (capped at ``DEAD_SAMPLES_CAP`` samples), so on small data "dead" means it fired
    on no training example during the last pass over the data."""
    window = min(max(int(n_train), 1), DEAD_SAMPLES_CAP)
    return max(1, math.ceil(window / batch_size))


def _pow2_floor(x: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(x, 1.0))))


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))
