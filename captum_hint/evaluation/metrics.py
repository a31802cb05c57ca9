"""Localization metrics: maps -> boxes and masks -> scores, each named after its source.

All maps are N x 1 x H x W. Every metric first scales each map to [0, 1]
(min-max per image, as ``wsolevaluation`` does) so that HINT's probability
maps and Grad-CAM are judged alike; a mask is then ``map >= threshold``.
Ground truth: ``gt_masks`` N x H x W bool; ``gt_boxes`` a list of N tensors
K_i x 4 ``(x1, y1, x2, y2)`` with inclusive pixel corners.

Standard WSOL metrics (Choe et al., "Evaluating Weakly Supervised Object
Localization Methods Right", CVPR 2020, and their ``wsolevaluation`` code):

* :func:`box_ious_over_thresholds`, :func:`box_hits_over_thresholds` and
  :func:`max_box_accuracy`: MaxBoxAcc and
  MaxBoxAccV2 (boxes of the largest connected component at every threshold);
* :func:`pixel_histograms` / :func:`pixel_average_precision`: PxAP.

Pointing games:

* :func:`pointing_game`: Zhang et al. ("Top-down neural attention by
  excitation backprop", ECCV 2016), a hit when the map's maximum lies within
  ``tolerance`` pixels of the object, 15 px as TorchRay's ``PointingGame``;
  ``tolerance=0`` is the strict version;
* :func:`energy_pointing_game`: the energy-based pointing game of
  Score-CAM (Wang et al., CVPRW 2020) as the SeVec paper uses it;
* :func:`mask_coverage`: what the HINT paper calls its pointing game (Fig. 4c),
  ``|mask ∩ GT| / |GT|``; :func:`mask_iou`: the HINT paper's IoU.

Other figures: :func:`map_to_boxes` and :func:`localization_hits` (the
classic one-threshold localization accuracy), :func:`mask_area`, and
:func:`mass_share` (the share of a map's mass on given pixels, used for
selectivity: how much of the *animal* map lies on vehicles).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..core.boxes import broadcast_box_iou
from ..core.checks import check_finite, check_fraction, check_number, check_positive_int
from ..core.threads import map_row_ranges
from .components import largest_component_boxes_by_level

__all__ = [
    "WSOL_THRESHOLDS",
    "normalize_maps",
    "map_to_boxes",
    "localization_hits",
    "box_ious_over_thresholds",
    "box_hits_over_thresholds",
    "max_box_accuracy",
    "pixel_histograms",
    "pixel_average_precision",
    "pointing_game",
    "mask_coverage",
    "mask_iou",
    "energy_pointing_game",
    "mask_area",
    "boxes_to_masks",
    "mass_share",
]

#: The ``wsolevaluation`` threshold sweep (``cam_curve_interval=0.01``).
WSOL_THRESHOLDS = tuple(np.round(np.arange(0, 1, 0.01), 2).tolist())
#: The IoU levels of MaxBoxAccV2.
MAXBOXACC_V2_IOUS = (0.3, 0.5, 0.7)


def normalize_maps(maps: Tensor) -> Tensor:
    """Each N x 1 x H x W map scaled to [0, 1] (a constant map becomes 0)."""
    check_finite("maps", maps)
    flat = maps.flatten(1).float()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = high - low
    return torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), 0.0).view_as(maps)


def _scaled(maps: Tensor, scaled: bool) -> Tensor:
    """The maps min-max scaled, or as given when the caller has scaled them (``scaled=True``)."""
    return maps.float() if scaled else normalize_maps(maps)


def _check_maps(maps: Tensor) -> None:
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[1] != 1:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps: expected N x 1 x H x W, got {shape}")


def _check_masks(maps: Tensor, gt_masks: Tensor, name: str = "gt_masks") -> None:
    if gt_masks.shape != (maps.shape[0], *maps.shape[2:]):
        raise ValueError(f"{name}: expected {(maps.shape[0], *maps.shape[2:])} like maps, got {tuple(gt_masks.shape)}")


def _component_boxes(scaled: np.ndarray, thresholds: Sequence[float]) -> Tensor:
    """N x T x 4 boxes of the largest 8-connected component of ``scaled >= τ`` for each τ (empty: whole image).

    Each τ is compared in the maps' precision (as ``scaled >= τ`` with a
    Python float); the masks of all thresholds come from one sorted pass
    per map (:func:`~captum_hint.evaluation.components.largest_component_boxes_by_level`).
    """
    grid, position = np.unique(np.asarray(thresholds, dtype=scaled.dtype), return_inverse=True)
    boxes = largest_component_boxes_by_level(scaled, grid)
    return torch.from_numpy(boxes[:, position.reshape(-1)]).float()


def map_to_boxes(maps: Tensor, threshold: float = 0.5, *, scaled: bool = False) -> Tensor:
    """N x 4 boxes around the largest connected component of ``map >= threshold``.

    ``scaled=True`` (here and in every metric of this module) says the maps
    are min-max scaled already (:func:`normalize_maps`), so they are not
    scaled again.
    """
    _check_maps(maps)
    check_fraction("threshold", threshold, allow_one=False)
    return _component_boxes(_scaled(maps, scaled)[:, 0].cpu().numpy(), [threshold])[:, 0]


def _box_ious(pred_boxes: Tensor, gt_boxes: Sequence[Tensor]) -> Tensor:
    """N (or N x T) best IoUs of each predicted N (x T) x 4 box with its image's GT boxes.

    Boxes have inclusive pixel corners, as in wsolevaluation. Each image's
    boxes meet only its own GT boxes (padded to the largest count), not every
    image's as a pairwise ``box_iou`` would (N times the work).
    """
    if len(gt_boxes) != len(pred_boxes):
        raise ValueError(f"gt_boxes: expected {len(pred_boxes)} box sets, got {len(gt_boxes)}")
    counts = torch.tensor([len(b) for b in gt_boxes])
    if (counts == 0).all():
        return torch.zeros(pred_boxes.shape[:-1])
    inclusive = torch.tensor([0.0, 0.0, 1.0, 1.0])
    slots = torch.arange(int(counts.max()))
    valid = slots < counts[:, None]  # N x G
    gt = torch.zeros(len(gt_boxes), len(slots), 4)
    gt[valid] = torch.cat([b.float().view(-1, 4) for b in gt_boxes]) + inclusive
    pred = (pred_boxes.float() + inclusive).view(len(pred_boxes), -1, 1, 4)  # N x T x 1 x 4
    ious = broadcast_box_iou(pred, gt[:, None])  # N x T x G
    best = torch.where(valid[:, None], ious, 0.0).amax(-1)
    return best.view(pred_boxes.shape[:-1])


def localization_hits(pred_boxes: Tensor, gt_boxes: Sequence[Tensor], iou: float = 0.5) -> Tensor:
    """N booleans: the predicted box overlaps some ground-truth box with IoU >= ``iou``."""
    check_fraction("iou", iou)
    return _box_ious(pred_boxes, gt_boxes) >= iou


def box_ious_over_thresholds(maps: Tensor, gt_boxes: Sequence[Tensor], thresholds: Sequence[float] = WSOL_THRESHOLDS,
                             *, scaled: bool = False) -> Tensor:
    """N x T: the best IoU with a GT box of the largest connected component's box of ``map >= τ_t``.

    Every map is min-max scaled, thresholded at each τ (in the maps' float32
    precision) and boxed around its largest 8-connected component
    (``wsolevaluation`` boxes the largest OpenCV contour, the same region
    for solid masks); an empty mask gives the whole image. All thresholds
    come from one pass per map, whatever their number (see
    :mod:`~captum_hint.evaluation.components`).
    """
    _check_maps(maps)
    if not len(thresholds):
        raise ValueError("thresholds: expected at least one threshold")
    for value in thresholds:
        check_number("thresholds", value, 0.0, 1.0, high_open=True)
    return _box_ious(_component_boxes(_scaled(maps, scaled)[:, 0].cpu().numpy(), thresholds), gt_boxes)


def box_hits_over_thresholds(maps: Tensor, gt_boxes: Sequence[Tensor], thresholds: Sequence[float] = WSOL_THRESHOLDS,
                             ious: Sequence[float] = MAXBOXACC_V2_IOUS, *, scaled: bool = False) -> Tensor:
    """N x T x I booleans: at threshold τ_t the largest component's box has IoU >= δ_i with a GT box.

    The per-image ingredient of MaxBoxAcc (``wsolevaluation``'s
    ``BoxEvaluator``), from :func:`box_ious_over_thresholds`.
    """
    for value in ious:
        check_fraction("ious", value)
    return box_ious_over_thresholds(maps, gt_boxes, thresholds, scaled=scaled)[..., None] >= torch.tensor(list(ious))


def max_box_accuracy(box_hits: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """MaxBoxAcc per IoU level from :func:`box_hits_over_thresholds`: I values, or R x I with ``weights``.

    ``max_τ mean_n hit(n, τ, δ)``; MaxBoxAccV2 is the mean over δ = 0.3, 0.5,
    0.7 (``wsolevaluation``). ``weights`` (R x N image counts, e.g. bootstrap
    resamples) weigh the images.
    """
    rows = torch.ones(1, len(box_hits)) if weights is None else weights.float()
    means = (rows @ box_hits.flatten(1).float()) / rows.sum(1, keepdim=True)
    accuracy = means.view(len(rows), *box_hits.shape[1:]).amax(1)
    return accuracy[0] if weights is None else accuracy


def pixel_histograms(maps: Tensor, gt_masks: Tensor, bins: int = 100, *, scaled: bool = False) -> Tensor:
    """N x 2 x B counts of GT-positive and GT-negative pixels per score bin (``wsolevaluation``'s MaskEvaluator).

    Scores are min-max scaled maps; bin b holds scores in [b/B, (b+1)/B)
    (a score of 1 goes to the last bin).
    """
    _check_maps(maps)
    _check_masks(maps, gt_masks)
    check_positive_int("bins", bins)
    scores = _scaled(maps, scaled)[:, 0].flatten(1)
    n = len(maps)
    # bin index within an (image, positive?) row, in int32: one count for all images
    row = (scores * bins).to(torch.int32).clamp_(max=bins - 1)
    row += (~gt_masks.flatten(1).to(scores.device)).to(torch.int32) * bins
    row += torch.arange(0, 2 * n * bins, 2 * bins, dtype=torch.int32, device=scores.device)[:, None]
    return torch.bincount(row.flatten(), minlength=n * 2 * bins).double().view(n, 2, bins).cpu()


def pixel_average_precision(histograms: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """PxAP from :func:`pixel_histograms`: a scalar (or R values with R x N ``weights``).

    Pixels of all images are pooled; thresholds run over the bin edges from
    the top; ``AP = Σ_t (R_t − R_{t−1}) P_t`` as ``wsolevaluation`` and
    scikit-learn's ``average_precision_score`` compute it (equal to the
    latter on scores quantized to the bins).
    """
    rows = torch.ones(1, len(histograms), dtype=torch.float64) if weights is None else weights.double()
    pooled = torch.einsum("rn,nkb->rkb", rows, histograms.double())  # R x 2 x B
    true_positive = pooled[:, 0].flip(-1).cumsum(-1)  # threshold at each bin's lower edge, from the top
    false_positive = pooled[:, 1].flip(-1).cumsum(-1)
    total_positive = true_positive[:, -1:].clamp_min(1e-12)
    recall = true_positive / total_positive
    precision = true_positive / (true_positive + false_positive).clamp_min(1e-12)
    gained = torch.diff(recall, dim=-1, prepend=torch.zeros_like(recall[:, :1]))
    ap = (gained * precision).sum(-1).float()
    return ap[0] if weights is None else ap


def pointing_game(maps: Tensor, gt_masks: Tensor, tolerance: float = 15.0) -> Tensor:
    """N booleans: the map's maximum lies within ``tolerance`` pixels of the GT mask.

    Zhang et al.'s pointing game as TorchRay implements it: a disc of radius
    ``tolerance`` (15 px) around the maximum must touch the object;
    ``tolerance=0`` asks for the maximum itself to lie on the object. Ties go
    to the first maximum in row-major order.
    """
    _check_maps(maps)
    _check_masks(maps, gt_masks)
    check_number("tolerance", tolerance, low=0.0)
    return _pointing_hits(maps.flatten(1).argmax(1).cpu(), gt_masks, tolerance)


def _pointing_hits(peaks: Tensor, gt_masks: Tensor, tolerance: float) -> Tensor:
    """:func:`pointing_game` from the N row-major indices of the maps' maxima (found once for several tolerances)."""
    height, width = gt_masks.shape[-2:]
    # only the disc around each peak is looked at; offsets beyond the image's size reach nothing
    reach = int(math.floor(min(tolerance, max(height, width))))
    steps = torch.arange(-reach, reach + 1)
    dy, dx = steps.repeat_interleave(len(steps)), steps.repeat(len(steps))
    disc = dy**2 + dx**2 <= tolerance**2
    ys, xs = (peaks // width)[:, None] + dy[disc], (peaks % width)[:, None] + dx[disc]
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    index = ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)
    return (gt_masks.flatten(1).cpu().gather(1, index) & inside).any(1)


def _masks(maps: Tensor, threshold: float, scaled: bool) -> Tensor:
    _check_maps(maps)
    check_fraction("threshold", threshold, allow_one=False)
    return (_scaled(maps, scaled) >= threshold)[:, 0]


def mask_coverage(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5, *, scaled: bool = False) -> Tensor:
    """N values ``|mask ∩ GT| / |GT|``: the HINT paper's "pointing game" (Fig. 4c)."""
    predicted = _masks(maps, threshold, scaled)
    _check_masks(maps, gt_masks)
    return (predicted & gt_masks).flatten(1).sum(1) / gt_masks.flatten(1).sum(1).clamp_min(1)


def mask_iou(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5, *, scaled: bool = False) -> Tensor:
    """N values ``|mask ∩ GT| / |mask ∪ GT|``: the HINT paper's IoU (Fig. 4c)."""
    predicted = _masks(maps, threshold, scaled)
    _check_masks(maps, gt_masks)
    union = (predicted | gt_masks).flatten(1).sum(1)
    return (predicted & gt_masks).flatten(1).sum(1) / union.clamp_min(1)


def mask_area(maps: Tensor, threshold: float = 0.5, *, scaled: bool = False) -> Tensor:
    """N values: the share of the image in ``map >= threshold``."""
    return _masks(maps, threshold, scaled).flatten(1).float().mean(1)


def boxes_to_masks(boxes: Sequence[Tensor], height: int, width: int) -> Tensor:
    """N x H x W masks of the union of each image's boxes (inclusive pixel corners)."""
    counts = torch.tensor([len(b) for b in boxes])
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    if counts.sum() == 0:
        return masks
    flat = torch.cat([b.float().view(-1, 4) for b in boxes])
    owner = torch.repeat_interleave(torch.arange(len(boxes)), counts)
    ys, xs = torch.arange(height).view(1, -1, 1), torch.arange(width).view(1, 1, -1)
    inside = ((xs >= flat[:, 0, None, None]) & (xs <= flat[:, 2, None, None])
              & (ys >= flat[:, 1, None, None]) & (ys <= flat[:, 3, None, None]))
    masks.index_put_((owner,), inside, accumulate=True)
    return masks


#: the share of each map's largest values sorted for the energy pointing game (demo maps keep 0-22 %)
_SORTED_SHARE = 0.25


def _largest_descending(values: np.ndarray, count: int) -> Tensor:
    """Each row's ``count`` largest values from the largest down, rows shared by threads.

    numpy's partition and sort are SIMD-vectorized, several times faster
    than torch's on a CPU, and release the GIL.
    """
    def work(start: int, stop: int) -> np.ndarray:
        rows = np.negative(values[start:stop])  # ascending order of the negated values, no flipped copy
        if count < rows.shape[1]:
            rows = np.partition(rows, count - 1, axis=1)[:, :count]
        rows.sort(axis=1)
        return np.negative(rows, out=rows)

    return torch.from_numpy(np.concatenate(map_row_ranges(work, len(values))))


def _energy_cut(descending: Tensor, energy: float, total: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Per row of values sorted from the largest down: how many are kept, the last kept, and whether the row reached.

    Kept are the values whose running sum (float32, accumulated in float64
    by torch) stays below ``energy`` of ``total`` (default: the row's sum),
    plus one. A row of only the largest values "reached" when its sum
    attains that share: its count is then the whole row's.
    """
    cumulative = descending.cumsum(1)
    threshold = energy * (cumulative[:, -1] if total is None else total)[:, None]
    n_keep = (cumulative < threshold).sum(1) + 1
    last = descending.gather(1, (n_keep.clamp_max(descending.shape[1]) - 1)[:, None])[:, 0]
    return n_keep, last, cumulative[:, -1] >= threshold[:, 0]


def _rounds_like_any_order(total: np.ndarray, count: int) -> np.ndarray:
    """Whether float64 sums of ``count`` non-negative values, ``total`` in one order, round to one float32 in any order.

    Summed in any order, each lies within ``count·u·total`` of the exact sum
    (u = 2^-53, a standard bound); the float32 is the same unless a point
    halfway between two float32 numbers lies within twice that.
    """
    nearest = total.astype(np.float32)
    down = (nearest.astype(np.float64) + np.nextafter(nearest, np.float32(-np.inf)).astype(np.float64)) / 2
    up = (nearest.astype(np.float64) + np.nextafter(nearest, np.float32(np.inf)).astype(np.float64)) / 2
    margin = 4 * count * np.finfo(np.float64).eps / 2 * total  # twice the bound, with room for its own rounding
    return (total - margin > down) & (total + margin < up)


def energy_pointing_game(maps: Tensor, gt_boxes: Sequence[Tensor], energy: float = 0.3, *, scaled: bool = False,
                         box_masks: Optional[Tensor] = None) -> Tensor:
    """N booleans: the top pixels holding ``energy`` of the map's mass all lie in the GT boxes.

    Pixels are kept from the largest value down until the kept mass reaches
    ``energy`` of the total (at least one pixel); among pixels equal to the
    last value kept, the first ones in raster order are kept (so a constant
    map keeps its first pixel). ``box_masks``: :func:`boxes_to_masks` of
    ``gt_boxes``, when the caller has it.

    The mass is summed as a full sort would (float32 running sums of the
    values from the largest down), but only each map's largest quarter is
    sorted: the total comes from a float64 sum in raster order, equal once
    rounded to float32 (checked per map against the orders' error bound).
    Maps that need more (the kept values are not all in the quarter, or the
    total lies too close to a rounding boundary) are sorted whole.
    """
    _check_maps(maps)
    check_fraction("energy", energy)
    weights = _scaled(maps, scaled).flatten(1).cpu()
    values = weights.numpy()
    n_pixels = values.shape[1]
    total = values.sum(1, dtype=np.float64)
    n_keep, last, reached = _energy_cut(_largest_descending(values, math.ceil(_SORTED_SHARE * n_pixels)), energy,
                                        torch.from_numpy(total.astype(np.float32)))
    whole = ~reached | torch.from_numpy(~_rounds_like_any_order(total, n_pixels))
    if whole.any():
        n_keep[whole], last[whole], _ = _energy_cut(_largest_descending(values[whole.numpy()], n_pixels), energy)
    inside = (boxes_to_masks(gt_boxes, *maps.shape[-2:]) if box_masks is None else box_masks).flatten(1).cpu()
    # every kept pixel is inside when no outside pixel reaches the last value kept ...
    outside_peak = torch.where(inside, -1.0, weights).amax(1)
    hits = outside_peak < last
    for row in (outside_peak == last).nonzero().flatten().tolist():  # ... or ties at it are kept inside only
        above = weights[row] > last[row]
        tied = weights[row] == last[row]
        kept = above | (tied & (tied.cumsum(0) <= n_keep[row] - above.sum()))
        hits[row] = not (kept & ~inside[row]).any()
    has_box = torch.tensor([len(b) > 0 for b in gt_boxes])
    return has_box & hits


def mass_share(maps: Tensor, regions: Tensor, *, scaled: bool = False) -> Tensor:
    """N values: the share of each min-max scaled map's mass inside the N x H x W ``regions``.

    With ``regions`` the objects of *another* concept this is the
    off-target share used for selectivity (0 is best; a uniform map scores
    the regions' area share). NaN for an all-zero map.
    """
    _check_maps(maps)
    _check_masks(maps, regions)
    weights = _scaled(maps, scaled).flatten(1)
    total = weights.sum(1)
    inside = (weights * regions.flatten(1).to(weights.device)).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), float("nan")).cpu()
