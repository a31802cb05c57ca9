"""A localization record's per-pixel figures from one compiled pass per map.

A record (:func:`~captum_hint.evaluation.localization_record`) needs, of
every map: the map min-max scaled (the box sweep and the energy pointing
game read it), PxAP's pixel histograms, and, at the fixed threshold, the
mask's area and its intersection and union with the object's mask, and the
map's mass on other objects. Computed metric by metric
(:mod:`~captum_hint.evaluation.metrics`) that is about a dozen passes over
every pixel, each with its temporaries; here it is two (the extremes, then
the rest), in numba, the maps split over threads.

The results equal the metric functions': the scaled maps and every count
exactly (the same float32 operations, thresholds compared in float32 as
torch compares a float32 tensor with a Python float), the mass share to
float32 rounding (its sums run in float64 here, in torch's order there).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numba
import numpy as np
import torch
from torch import Tensor

from ..core.checks import check_finite, check_fraction, check_positive_int
from ..core.threads import map_row_ranges
from .metrics import _check_maps, _check_masks

__all__ = ["PixelFigures", "pixel_figures"]

_F32 = np.float32


class PixelFigures(NamedTuple):
    """What :func:`pixel_figures` returns; N values per field unless said."""

    #: N x 1 x H x W maps min-max scaled (:func:`~captum_hint.evaluation.normalize_maps`)
    scaled: Tensor
    #: N x 2 x B counts of object and other pixels per score bin (:func:`~captum_hint.evaluation.pixel_histograms`)
    histograms: Tensor
    #: :func:`~captum_hint.evaluation.mask_coverage`
    coverage: Tensor
    #: :func:`~captum_hint.evaluation.mask_iou`
    iou: Tensor
    #: :func:`~captum_hint.evaluation.mask_area`
    area: Tensor
    #: :func:`~captum_hint.evaluation.mass_share` on ``other_masks`` (None without them)
    other_share: Optional[Tensor]
    #: N row-major indices of each map's first maximum (the pointing game's point)
    peak: Tensor


@numba.njit(cache=True, nogil=True)
def _pass(maps, masks, others, bins, threshold, first, stop, scaled, histograms, counts, masses, peaks):
    """Fill rows ``first:stop`` of the outputs from N x P maps, masks and other-object masks."""
    n_pixels = maps.shape[1]
    tiny = _F32(1e-12)  # normalize_maps' clamp of the span
    scale = _F32(bins)
    for n in range(first, stop):
        low = maps[n, 0]
        high = maps[n, 0]
        peak = 0
        for p in range(n_pixels):
            low = min(low, maps[n, p])
            if maps[n, p] > high:  # strictly: ties keep the first maximum, as torch's argmax
                high = maps[n, p]
                peak = p
        peaks[n] = peak
        span = high - low
        divisor = max(span, tiny)
        inside = 0
        predicted = 0
        objects = 0
        total = 0.0
        on_others = 0.0
        for p in range(n_pixels):
            value = (maps[n, p] - low) / divisor if span > 0 else _F32(0.0)
            scaled[n, p] = value
            level = min(np.int32(value * scale), bins - 1)
            histograms[n, 0 if masks[n, p] else 1, level] += 1
            if value >= threshold:
                predicted += 1
                inside += masks[n, p]
            objects += masks[n, p]
            total += value
            if others[n, p]:
                on_others += value
        counts[n, 0] = inside
        counts[n, 1] = predicted
        counts[n, 2] = objects
        masses[n, 0] = total
        masses[n, 1] = on_others


def pixel_figures(maps: Tensor, gt_masks: Tensor, other_masks: Optional[Tensor] = None, threshold: float = 0.5,
                  bins: int = 100, workers: Optional[int] = None) -> PixelFigures:
    """The scaled maps and every per-pixel figure of a record, from one pass per map.

    Args:
        maps: N x 1 x H x W.
        gt_masks: N x H x W bool object masks.
        other_masks: N x H x W bool masks of other concepts' objects, or None.
        threshold: the fixed threshold of coverage, IoU and area.
        bins: PxAP's score bins.
        workers: threads sharing the maps (default: torch's intra-op count).
    """
    _check_maps(maps)
    _check_masks(maps, gt_masks)
    if other_masks is not None:
        _check_masks(maps, other_masks, "other_masks")
    check_fraction("threshold", threshold, allow_one=False)
    check_positive_int("bins", bins)
    check_finite("maps", maps)
    n = len(maps)
    flat = maps.detach().float().flatten(1).cpu().contiguous().numpy()
    objects = gt_masks.flatten(1).cpu().bool().contiguous().numpy()
    others = (np.zeros_like(objects) if other_masks is None
              else other_masks.flatten(1).cpu().bool().contiguous().numpy())
    scaled = np.empty_like(flat)
    histograms = np.zeros((n, 2, bins), np.int64)
    counts = np.empty((n, 3), np.int64)  # inside the object, predicted, object pixels
    masses = np.empty((n, 2), np.float64)  # all, on other objects
    peaks = np.empty(n, np.int64)
    map_row_ranges(lambda start, stop: _pass(flat, objects, others, bins, _F32(threshold), start, stop, scaled,
                                             histograms, counts, masses, peaks), n, workers)
    # the kernel reads the maps in float32; in another precision two values it rounds together may differ
    peak = torch.from_numpy(peaks) if maps.dtype == torch.float32 else maps.detach().flatten(1).argmax(1).cpu()
    inside, predicted, object_pixels = (torch.from_numpy(counts[:, i]).float() for i in range(3))
    union = predicted + object_pixels - inside
    total, on_others = (torch.from_numpy(masses[:, i]).float() for i in range(2))
    share = None
    if other_masks is not None:
        share = torch.where(total > 0, on_others / total.clamp_min(1e-12), float("nan"))
    return PixelFigures(
        scaled=torch.from_numpy(scaled).view(maps.shape),
        histograms=torch.from_numpy(histograms).double(),
        coverage=inside / object_pixels.clamp_min(1),
        iou=inside / union.clamp_min(1),
        area=predicted / flat.shape[1],
        other_share=share,
        peak=peak,
    )
