"""TopK sparse autoencoders for sentence embeddings, with a scikit-learn like API.

>>> from sae import SparseAutoencoder
>>> sae = SparseAutoencoder(random_state=0).fit(embeddings)          # doctest: +SKIP
>>> values, indices = sae.encode_topk(embeddings)                      # doctest: +SKIP
"""

from .device import resolve_device
from .metrics import dead_fraction, firing_frequency, frequency_summary, fvu, l0
from .model import SAEOutput, TopKSAE, normalized_mse
from .sizing import (
    default_batch_size,
    default_dead_steps,
    default_epochs,
    default_growth,
    default_size,
)
from .trainer import NotFittedError, SparseAutoencoder

load = SparseAutoencoder.load

__all__ = [
    "NotFittedError",
    "SAEOutput",
    "SparseAutoencoder",
    "TopKSAE",
    "dead_fraction",
    "default_batch_size",
    "default_dead_steps",
    "default_epochs",
    "default_growth",
    "default_size",
    "firing_frequency",
    "frequency_summary",
    "fvu",
    "l0",
    "load",
    "normalized_mse",
    "resolve_device",
]
