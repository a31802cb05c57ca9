"""Localization metrics: maps -> boxes and masks -> scores, each named after its source.

All maps are N x 1 x H x W. Every metric first scales each map to [0, 1]
(min-max per image, as ``wsolevaluation`` does) so that HINT's probability
maps and Grad-CAM are judged alike; a mask is then ``map >= threshold``.
Ground truth: ``gt_masks`` N x H x W bool; ``gt_boxes`` a list of N tensors
K_i x 4 ``(x1, y1, x2, y2)`` with inclusive pixel corners.

Standard WSOL metrics (Choe et al., "Evaluating Weakly Supervised Object
Localization Methods Right", CVPR 2020, and their ``wsolevaluation`` code):

* :func:`box_hits_over_thresholds` / :func:`max_box_accuracy`: MaxBoxAcc and
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

from typing import Optional, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from ..core.boxes import box_iou
from ..core.checks import check_finite, check_fraction, check_number, check_positive_int

__all__ = [
    "WSOL_THRESHOLDS",
    "normalize_maps",
    "map_to_boxes",
    "localization_hits",
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


def _check_maps(maps: Tensor) -> None:
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[1] != 1:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps: expected N x 1 x H x W, got {shape}")


def _check_masks(maps: Tensor, gt_masks: Tensor) -> None:
    if gt_masks.shape != (maps.shape[0], *maps.shape[2:]):
        raise ValueError(f"gt_masks: expected {(maps.shape[0], *maps.shape[2:])} like maps, got {tuple(gt_masks.shape)}")


def _largest_component_boxes(masks: np.ndarray) -> Tensor:
    """N x 4 boxes of the largest 8-connected component of each of N x H x W masks (empty: whole image)."""
    n, height, width = masks.shape
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # connect within an image, never across images
    labels, count = ndimage.label(masks, structure=structure)
    boxes = np.tile(np.array([0, 0, width - 1, height - 1]), (n, 1))
    if count == 0:
        return torch.from_numpy(boxes).float()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    # labels are numbered in raster order, so each image owns a contiguous range of them
    last_label = np.maximum.accumulate(labels.reshape(n, -1).max(1))
    owner = np.searchsorted(last_label, np.arange(1, count + 1))
    order = np.lexsort((sizes, owner))
    is_last = np.r_[owner[order][1:] != owner[order][:-1], True]
    largest = np.zeros(n, dtype=labels.dtype)
    largest[owner[order][is_last]] = order[is_last] + 1
    chosen = labels == largest[:, None, None]
    chosen &= (largest > 0)[:, None, None]
    rows, cols = chosen.any(2), chosen.any(1)
    found = rows.any(1)
    y1, y2 = rows.argmax(1), height - 1 - rows[:, ::-1].argmax(1)
    x1, x2 = cols.argmax(1), width - 1 - cols[:, ::-1].argmax(1)
    boxes[found] = np.stack([x1, y1, x2, y2], 1)[found]
    return torch.from_numpy(boxes).float()


def map_to_boxes(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N x 4 boxes around the largest connected component of ``map >= threshold``."""
    return _largest_component_boxes(_masks(maps, threshold).cpu().numpy())


def _box_ious(pred_boxes: Tensor, gt_boxes: Sequence[Tensor]) -> Tensor:
    """N best IoUs of each predicted box with its image's GT boxes (inclusive pixel corners, as wsolevaluation)."""
    if len(gt_boxes) != len(pred_boxes):
        raise ValueError(f"gt_boxes: expected {len(pred_boxes)} box sets, got {len(gt_boxes)}")
    counts = torch.tensor([len(b) for b in gt_boxes])
    if (counts == 0).all():
        return torch.zeros(len(pred_boxes))
    inclusive = torch.tensor([0.0, 0.0, 1.0, 1.0])
    gt = torch.cat([b.float().view(-1, 4) for b in gt_boxes]) + inclusive
    owner = torch.repeat_interleave(torch.arange(len(gt_boxes)), counts)
    ious = box_iou(pred_boxes.float() + inclusive, gt)  # N x G, only each image's own columns count
    ious = torch.where(owner[None] == torch.arange(len(pred_boxes))[:, None], ious, 0.0)
    return ious.amax(1)


def localization_hits(pred_boxes: Tensor, gt_boxes: Sequence[Tensor], iou: float = 0.5) -> Tensor:
    """N booleans: the predicted box overlaps some ground-truth box with IoU >= ``iou``."""
    check_fraction("iou", iou)
    return _box_ious(pred_boxes, gt_boxes) >= iou


def box_hits_over_thresholds(maps: Tensor, gt_boxes: Sequence[Tensor], thresholds: Sequence[float] = WSOL_THRESHOLDS,
                             ious: Sequence[float] = MAXBOXACC_V2_IOUS) -> Tensor:
    """N x T x I booleans: at threshold τ_t the largest component's box has IoU >= δ_i with a GT box.

    The per-image ingredient of MaxBoxAcc (``wsolevaluation``'s
    ``BoxEvaluator``): every map is min-max scaled, thresholded at each τ,
    and boxed around its largest connected component. wsolevaluation boxes
    the largest OpenCV contour; here it is the largest 8-connected pixel
    component, which is the same region for solid masks.
    """
    _check_maps(maps)
    if not len(thresholds):
        raise ValueError("thresholds: expected at least one threshold")
    for value in thresholds:
        check_number("thresholds", value, 0.0, 1.0, high_open=True)
    for value in ious:
        check_fraction("ious", value)
    scaled = normalize_maps(maps)[:, 0].cpu().numpy()
    hits = torch.zeros(len(maps), len(thresholds), len(ious), dtype=torch.bool)
    levels = torch.tensor(list(ious))
    for t, threshold in enumerate(thresholds):  # one labelling of all images per threshold
        best = _box_ious(_largest_component_boxes(scaled >= threshold), gt_boxes)
        hits[:, t] = best[:, None] >= levels
    return hits


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


def pixel_histograms(maps: Tensor, gt_masks: Tensor, bins: int = 100) -> Tensor:
    """N x 2 x B counts of GT-positive and GT-negative pixels per score bin (``wsolevaluation``'s MaskEvaluator).

    Scores are min-max scaled maps; bin b holds scores in [b/B, (b+1)/B)
    (a score of 1 goes to the last bin).
    """
    _check_maps(maps)
    _check_masks(maps, gt_masks)
    check_positive_int("bins", bins)
    scaled = normalize_maps(maps)[:, 0].flatten(1)
    index = (scaled * bins).long().clamp(max=bins - 1)
    positive = gt_masks.flatten(1).to(scaled.device).long()
    n = len(maps)
    # bin index within a (image, positive?) row: one scatter for all images
    row = (torch.arange(n, device=scaled.device)[:, None] * 2 + (1 - positive)) * bins + index
    counts = torch.zeros(n * 2 * bins, dtype=torch.float64, device=scaled.device)
    counts.index_add_(0, row.flatten(), torch.ones(row.numel(), dtype=torch.float64, device=scaled.device))
    return counts.view(n, 2, bins).cpu()


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
    width = maps.shape[-1]
    peak = maps.flatten(1).argmax(1)
    ys = torch.arange(maps.shape[-2], device=maps.device).view(1, -1, 1)
    xs = torch.arange(width, device=maps.device).view(1, 1, -1)
    distance2 = (ys - (peak // width).view(-1, 1, 1)) ** 2 + (xs - (peak % width).view(-1, 1, 1)) ** 2
    return ((distance2 <= tolerance**2) & gt_masks.to(maps.device)).flatten(1).any(1).cpu()


def _masks(maps: Tensor, threshold: float) -> Tensor:
    _check_maps(maps)
    check_fraction("threshold", threshold, allow_one=False)
    return (normalize_maps(maps) >= threshold)[:, 0]


def mask_coverage(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values ``|mask ∩ GT| / |GT|``: the HINT paper's "pointing game" (Fig. 4c)."""
    predicted = _masks(maps, threshold)
    _check_masks(maps, gt_masks)
    return (predicted & gt_masks).flatten(1).sum(1) / gt_masks.flatten(1).sum(1).clamp_min(1)


def mask_iou(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values ``|mask ∩ GT| / |mask ∪ GT|``: the HINT paper's IoU (Fig. 4c)."""
    predicted = _masks(maps, threshold)
    _check_masks(maps, gt_masks)
    union = (predicted | gt_masks).flatten(1).sum(1)
    return (predicted & gt_masks).flatten(1).sum(1) / union.clamp_min(1)


def mask_area(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N values: the share of the image in ``map >= threshold``."""
    return _masks(maps, threshold).flatten(1).float().mean(1)


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


def energy_pointing_game(maps: Tensor, gt_boxes: Sequence[Tensor], energy: float = 0.3) -> Tensor:
    """N booleans: the top pixels holding ``energy`` of the map's mass all lie in the GT boxes."""
    _check_maps(maps)
    check_fraction("energy", energy)
    weights = normalize_maps(maps).flatten(1)
    order = weights.sort(1, descending=True)
    cumulative = order.values.cumsum(1)
    # keep pixels until the kept mass reaches `energy` of the total (at least one)
    n_keep = (cumulative < energy * cumulative[:, -1:]).sum(1) + 1
    kept = torch.zeros_like(weights, dtype=torch.bool)
    kept.scatter_(1, order.indices, torch.arange(weights.shape[1]).expand_as(weights) < n_keep[:, None])
    inside = boxes_to_masks(gt_boxes, *maps.shape[-2:]).flatten(1)
    has_box = torch.tensor([len(b) > 0 for b in gt_boxes])
    return has_box & ~(kept & ~inside).any(1)


def mass_share(maps: Tensor, regions: Tensor) -> Tensor:
    """N values: the share of each min-max scaled map's mass inside the N x H x W ``regions``.

    With ``regions`` the objects of *another* concept this is the
    off-target share used for selectivity (0 is best; a uniform map scores
    the regions' area share). NaN for an all-zero map.
    """
    _check_maps(maps)
    _check_masks(maps, regions)
    weights = normalize_maps(maps).flatten(1)
    total = weights.sum(1)
    inside = (weights * regions.flatten(1).to(weights.device)).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), float("nan")).cpu()
