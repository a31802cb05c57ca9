"""Confidence intervals for reported figures: percentile bootstrap over images."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..core.checks import check_positive_int

__all__ = ["bootstrap_mean"]


def bootstrap_mean(values: Sequence[float], seed: int = 0, rounds: int = 2000) -> Tuple[float, float, float]:
    """Mean and 95 % percentile-bootstrap interval of per-image values (NaN values dropped).

    Resamples the values with replacement ``rounds`` times (a seeded NumPy
    generator) and takes the 2.5th and 97.5th percentiles of the means.

    Returns:
        ``(mean, low, high)``.
    """
    check_positive_int("rounds", rounds)
    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("values: no finite value to bootstrap")
    means = np.random.default_rng(seed).choice(values, size=(rounds, values.size)).mean(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
