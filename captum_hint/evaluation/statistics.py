"""Confidence intervals for reported figures: percentile bootstrap over images.

:func:`bootstrap_statistic` is the general form: a statistic is a function of
image weights (R x N counts, one resample per row), so figures that are not
means over images, such as MaxBoxAcc (a maximum over thresholds of a mean) or
PxAP (pooled pixels), resample exactly like means do. Two methods scored on
the same images are compared with a *paired* bootstrap: the same resample
feeds both, and the interval is of their difference.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ..core.checks import check_positive_int

__all__ = ["bootstrap_weights", "bootstrap_statistic", "bootstrap_mean", "paired_bootstrap_mean", "pearson_rows",
           "spearman_rows"]

Interval = Tuple[float, float, float]


def bootstrap_weights(n: int, seed: int = 0, rounds: int = 2000) -> Tensor:
    """R x N counts: how often each of N images is drawn in each of ``rounds`` resamples (seeded NumPy generator)."""
    check_positive_int("n", n)
    check_positive_int("rounds", rounds)
    drawn = np.random.default_rng(seed).choice(n, size=(rounds, n))
    flat = (drawn + n * np.arange(rounds)[:, None]).ravel()
    return torch.from_numpy(np.bincount(flat, minlength=rounds * n).reshape(rounds, n).astype(np.float32))


def bootstrap_statistic(statistic: Callable[[Tensor], Tensor], n: int, seed: int = 0, rounds: int = 2000,
                        weights: Optional[Tensor] = None) -> Interval:
    """The statistic on all N images and its 95 % percentile-bootstrap interval.

    Args:
        statistic: maps R x N image weights to R values (the full sample is
            one row of ones).
        n: number of images.
        weights: resamples to reuse (from :func:`bootstrap_weights`), so that
            several statistics of the same images share their draws.

    Returns:
        ``(value, low, high)``.
    """
    value = float(statistic(torch.ones(1, n))[0])
    weights = bootstrap_weights(n, seed, rounds) if weights is None else weights
    resampled = statistic(weights).double().numpy()
    return value, float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[~np.isnan(values)]


def bootstrap_mean(values: Sequence[float], seed: int = 0, rounds: int = 2000) -> Interval:
    """Mean and 95 % percentile-bootstrap interval of per-image values (NaN values dropped).

    Returns:
        ``(mean, low, high)``.
    """
    check_positive_int("rounds", rounds)
    values = _finite(values)
    if values.size == 0:
        raise ValueError("values: no finite value to bootstrap")
    column = torch.from_numpy(values)
    return bootstrap_statistic(lambda w: (w.double() @ column) / w.sum(1).double(), values.size, seed, rounds)


def paired_bootstrap_mean(first: Sequence[float], second: Sequence[float], seed: int = 0,
                          rounds: int = 2000) -> Interval:
    """Mean of ``first − second`` over images scored by both, with its paired 95 % interval.

    Images where either value is NaN are dropped from both.
    """
    first, second = np.asarray(first, dtype=float).ravel(), np.asarray(second, dtype=float).ravel()
    if first.shape != second.shape:
        raise ValueError(f"second: expected {first.size} values like first (the same images), got {second.size}")
    return bootstrap_mean(first - second, seed, rounds)


def pearson_rows(x: Tensor, y: Tensor) -> Tensor:
    """Per-row Pearson correlation of two N x K tensors."""
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    return (x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-30)


def spearman_rows(a: Tensor, b: Tensor) -> Tensor:
    """Per-image Spearman rank correlation of two N x ... maps (average ranks for ties, as scipy)."""
    ranks = [torch.from_numpy(stats.rankdata(m.flatten(1).double().cpu().numpy(), axis=1)) for m in (a, b)]
    return pearson_rows(*ranks).float()
