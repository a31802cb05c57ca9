"""From layer saliency to responsible regions (HINT, Sec. 3.1, Alg. 1 lines 6-8).

The layer saliency ``s`` (N x C x H x W) is aggregated over channels by ``zeta``
(the paper's default: the L2 norm), normalized per image to [0, 1], and split
by a threshold ``t``: positions with ``s_hat >= t`` are the concept's
*responsible region*, the rest *background*.

Normalization: per image, ``(s - min) / (q - min)`` clipped to [0, 1], where
``q`` is the ``percentile``-th percentile of that image's map (default 99,
linear interpolation between positions). A high percentile rather than the max
keeps a single extreme position from squashing the rest of the map towards 0;
``percentile=100`` gives plain min-max scaling. A constant map has no
responsible position (all zeros).
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from captum.attr import LayerAttribution
from torch import Tensor

__all__ = [
    "AGGREGATIONS",
    "Regions",
    "aggregate_saliency",
    "normalize_saliency",
    "responsible_regions",
]

Aggregation = Union[str, Callable[[Tensor], Tensor]]

#: Channel aggregations ``zeta``: N x C x H x W -> N x 1 x H x W.
AGGREGATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "l2": lambda s: torch.linalg.vector_norm(s, ord=2, dim=1, keepdim=True),
    "l1": lambda s: s.abs().sum(dim=1, keepdim=True),
    "sum": lambda s: s.sum(dim=1, keepdim=True),
    "max": lambda s: s.amax(dim=1, keepdim=True),
    "abs_max": lambda s: s.abs().amax(dim=1, keepdim=True),
}


class Regions(NamedTuple):
    """Responsible and background regions of a batch.

    Attributes:
        saliency: N x 1 x H x W normalized saliency in [0, 1].
        responsible: N x 1 x H x W bool, ``saliency >= threshold``.
        background: N x 1 x H x W bool, the complement.
    """

    saliency: Tensor
    responsible: Tensor
    background: Tensor


def _check_saliency(saliency: Tensor) -> None:
    if not isinstance(saliency, Tensor) or saliency.dim() != 4:
        shape = tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__
        raise ValueError(
            f"saliency: expected a layer saliency tensor shaped (N, C, H, W), got {shape}"
        )
    if torch.isnan(saliency).any():
        bad = torch.isnan(saliency).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"saliency: contains NaN (samples {bad[:10]}); check the model's outputs "
            "and the target for those images"
        )


def aggregate_saliency(saliency: Tensor, aggregation: Aggregation = "l2") -> Tensor:
    """Aggregate layer saliency over channels.

    Args:
        saliency: N x C x H x W.
        aggregation: a name in :data:`AGGREGATIONS` (``l2``, ``l1``, ``sum``,
            ``max``, ``abs_max``) or a callable mapping N x C x H x W to
            N x H x W or N x 1 x H x W.

    Returns:
        N x 1 x H x W.
    """
    _check_saliency(saliency)
    if callable(aggregation):
        zeta = aggregation
    elif aggregation in AGGREGATIONS:
        zeta = AGGREGATIONS[aggregation]
    else:
        raise ValueError(
            f"aggregation: unknown aggregation {aggregation!r}; expected one of "
            f"{', '.join(AGGREGATIONS)} or a callable"
        )
    out = zeta(saliency)
    n, _, h, w = saliency.shape
    if out.dim() == 3:
        out = out.unsqueeze(1)
    if tuple(out.shape) != (n, 1, h, w):
        raise ValueError(
            f"aggregation: expected the callable to return shape ({n}, 1, {h}, {w}) "
            f"or ({n}, {h}, {w}), got {tuple(out.shape)}"
        )
    return out


def normalize_saliency(aggregated: Tensor, percentile: float = 99.0) -> Tensor:
    """Scale each image's N x 1 x H x W map to [0, 1] (min to ``percentile``)."""
    _check_saliency(aggregated)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile: expected a value in (0, 100], got {percentile}")
    flat = aggregated.flatten(1).float()
    low = flat.amin(dim=1, keepdim=True)
    high = torch.quantile(flat, percentile / 100.0, dim=1, keepdim=True)
    span = high - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), 0.0)
    return scaled.clamp_(0.0, 1.0).view_as(aggregated).to(aggregated.dtype)


def responsible_regions(
    saliency: Tensor,
    threshold: float = 0.5,
    aggregation: Aggregation = "l2",
    percentile: float = 99.0,
    size: Optional[Tuple[int, int]] = None,
    interpolate_mode: str = "bilinear",
) -> Regions:
    """Split every position of a layer saliency map into responsible / background.

    Args:
        saliency: N x C x H x W layer saliency (any method of :mod:`captum_hint.attr`).
        threshold: ``t`` in (0, 1); positions with normalized saliency ``>= t``
            are responsible. The paper uses 0.5.
        aggregation: channel aggregation ``zeta`` (see :func:`aggregate_saliency`).
        percentile: upper end of the per-image normalization.
        size: if given, ``(H', W')`` to upsample the normalized map to (with
            Captum's ``LayerAttribution.interpolate``) before thresholding, e.g.
            the input image size.
        interpolate_mode: mode for that upsampling.

    Returns:
        :class:`Regions` with N x 1 x H x W (or H' x W') tensors.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: expected t in (0, 1), got {threshold}")
    normalized = normalize_saliency(aggregate_saliency(saliency, aggregation), percentile)
    if size is not None:
        normalized = LayerAttribution.interpolate(normalized, tuple(size), interpolate_mode)
    responsible = normalized >= threshold
    return Regions(normalized, responsible, ~responsible)
