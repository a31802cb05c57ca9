"""Does a concept map say whether the concept is there? Image-level separation of present from absent.

Localization asks where a map points on images that hold the concept. A
map is also read as evidence that the concept is there at all: its peak on
an image without the concept should stay below its peak on images with it.
:func:`presence_auc` scores any per-image score (a map's peak or mean, the
model's own concept probability) by its ROC-AUC for telling the two apart,
with a 95 % bootstrap interval over images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..core.checks import check_finite, check_positive_int
from .statistics import Interval, bootstrap_weights

__all__ = ["weighted_roc_auc", "presence_auc"]


def weighted_roc_auc(scores: Tensor, present: Tensor, weights: Tensor) -> Tensor:
    """R ROC-AUCs of the same N scores, one per row of R x N image weights.

    The chance that a positive image (weighted) scores above a negative one,
    ties counting one half: scikit-learn's ``roc_auc_score(present, scores,
    sample_weight=row)`` for every row (equal, tested), here all rows in one
    pass over the sorted scores, as a bootstrap needs thousands of rows.
    NaN where the positives or the negatives of a row weigh nothing.
    """
    values, index = torch.unique(scores.double(), sorted=True, return_inverse=True)
    rows = weights.double()
    present = present.bool()
    positive = torch.zeros(len(rows), len(values), dtype=torch.float64).index_add_(1, index[present], rows[:, present])
    negative = torch.zeros_like(positive).index_add_(1, index[~present], rows[:, ~present])
    below = negative.cumsum(1) - negative  # negative weight strictly below each score
    pairs = positive.sum(1) * negative.sum(1)
    wins = (positive * (below + 0.5 * negative)).sum(1)
    return torch.where(pairs > 0, wins / pairs.clamp_min(1e-300), float("nan"))


def presence_auc(scores: Tensor, present: Tensor, seed: int = 0, rounds: int = 2000) -> Interval:
    """ROC-AUC of per-image ``scores`` for images with the concept (``present``) against those without.

    Args:
        scores: N per-image scores (higher: more of the concept).
        present: N booleans, at least one of each.
        seed, rounds: of the bootstrap over images; resamples that hold one
            class only have no AUC and are left out.

    Returns:
        ``(auc, low, high)``: 0.5 is chance, 1 a perfect separation.
    """
    check_positive_int("rounds", rounds)
    scores, present = torch.as_tensor(scores).flatten(), torch.as_tensor(present).flatten().bool()
    if len(scores) != len(present):
        raise ValueError(f"present: expected one value per score ({len(scores)}), got {len(present)}")
    check_finite("scores", scores)
    if present.all() or not present.any():
        raise ValueError(f"present: expected images with and without the concept, got {int(present.sum())} of "
                         f"{len(present)} with it")
    value = float(weighted_roc_auc(scores, present, torch.ones(1, len(scores)))[0])
    resampled = weighted_roc_auc(scores, present, bootstrap_weights(len(scores), seed, rounds)).numpy()
    resampled = resampled[~np.isnan(resampled)]
    return value, float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))
