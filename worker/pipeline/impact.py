"""Impact stage: how much each theme moves the rating, from one joint regression over all themes.

The rating (or an NPS answer, 0–10) of each rated comment is regressed on the comments × themes activation matrix,
every theme's column scaled to [0, 1] by its highest activation: a ridge regression (L2 penalty ``alpha``, an
unpenalised intercept) fitted on all themes at once, so a theme that merely co-occurs with another is not blamed for
its effect (unlike "remove the theme's comments and see how the mean moves"). ``coef`` is the change in rating
associated with the theme at full strength, the other themes held fixed; ``low`` and ``high`` are a percentile
bootstrap interval (resampled comments, ``n_boot`` refits).

The fit is the closed form of scikit-learn's ``Ridge(alpha, fit_intercept=True)`` with sample weights (a bootstrap
resample is a vector of multinomial weights), so it works on a sparse matrix without densifying it and each refit
costs one themes × themes solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DIGITS = 4


@dataclass(frozen=True)
class ImpactOptions:
    alpha: float = 1.0
    n_boot: int = 200
    level: float = 0.95
    min_rated: int = 20  # fewer rated comments than this → no impact at all (null)
    seed: int = 0


def ridge_fit(x: sp.spmatrix | np.ndarray, y: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Coefficients of a weighted ridge regression with an unpenalised intercept (the intercept is not returned)."""
    x = sp.csr_matrix(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    x_mean = np.asarray(x.T @ w).ravel() / total
    y_mean = float(w @ y) / total
    xw = x.multiply(w[:, None]).tocsr()
    gram = np.asarray((x.T @ xw).todense()) - total * np.outer(x_mean, x_mean)
    rhs = np.asarray(xw.T @ y).ravel() - total * x_mean * y_mean
    gram[np.diag_indices_from(gram)] += alpha
    return np.linalg.solve(gram, rhs)


def theme_impact(
    activations: sp.spmatrix | np.ndarray,
    ratings: np.ndarray,
    options: ImpactOptions = ImpactOptions(),
) -> list[dict[str, float] | None]:
    """Per theme column, ``{"coef", "low", "high", "n"}`` (rating points), or ``None`` for every theme when there are
    too few rated comments (or the ratings do not vary). ``ratings`` may hold NaN for unrated comments."""
    x = sp.csr_matrix(activations, dtype=np.float64)
    n_themes = x.shape[1]
    y = np.asarray(ratings, dtype=np.float64)
    rated = np.flatnonzero(~np.isnan(y))
    if n_themes == 0 or len(rated) < options.min_rated or np.ptp(y[rated]) == 0:
        return [None] * n_themes
    scale = np.asarray(abs(x).max(axis=0).todense()).ravel()
    x = (x @ sp.diags(1.0 / np.where(scale > 0, scale, 1.0))).tocsr()[rated]
    y = y[rated]
    coef = ridge_fit(x, y, options.alpha)
    rng = np.random.default_rng(options.seed)
    boots = np.empty((options.n_boot, n_themes))
    for b in range(options.n_boot):
        weights = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y))).astype(np.float64)
        boots[b] = ridge_fit(x, y, options.alpha, weights)
    tail = (1.0 - options.level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail], axis=0)
    support = np.diff(x.tocsc().indptr)  # rated comments where the theme is active
    return [
        {"coef": round(float(c), DIGITS), "low": round(float(lo), DIGITS), "high": round(float(hi), DIGITS),
         "n": int(n)}
        for c, lo, hi, n in zip(coef, low, high, support)
    ]  # fmt: skip
