"""Localization metrics: maps -> boxes and masks -> scores.

All maps are N x 1 x H x W. Every metric first scales each map to [0, 1]
(min-max per image) so that HINT's probability maps and Grad-CAM are judged
alike; a mask is then ``map >= threshold`` (0.5 by default).

* box from a map: the largest 8-connected component of the mask, boxed
  (the whole image if the mask is empty);
* localization accuracy: box IoU >= 0.5 with a ground-truth box of the concept
  (GT-known); top-1 also requires the model's top-1 class under the concept;
* pointing game (Zhang et al.): the map's maximum lies in the ground-truth mask;
* mask coverage: |mask ∩ GT| / |GT| — what the HINT paper calls its pointing
  game (Fig. 4c);
* mask IoU: |mask ∩ GT| / |mask ∪ GT|;
* energy pointing game (SeVec paper): keep the highest pixels holding
  ``energy`` of the map's total; a hit if they all lie in the ground-truth boxes;
* mask area: the mask's share of the image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from ..core.boxes import box_iou
from ..core.checks import check_finite, check_fraction

__all__ = [
    "normalize_maps",
    "map_to_boxes",
    "localization_hits",
    "pointing_game",
    "mask_coverage",
    "mask_iou",
    "energy_pointing_game",
    "mask_area",
]


def normalize_maps(maps: Tensor) -> Tensor:
    """Each N x 1 x H x W map scaled to [0, 1] (a constant map becomes 0)."""
    check_finite("maps", maps)
    flat = maps.flatten(1).float()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = high - low
    return torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), 0.0).view_as(maps)


def map_to_boxes(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N x 4 boxes around the largest connected component of ``map >= threshold``."""
    masks = _masks(maps, threshold).cpu().numpy()
    boxes = []
    for mask in masks:  # connected components are per image (scipy)
        components, count = ndimage.label(mask, structure=np.ones((3, 3)))
        if count == 0:
            boxes.append([0, 0, mask.shape[1] - 1, mask.shape[0] - 1])
            continue
        largest = np.bincount(components.ravel())[1:].argmax() + 1
        ys, xs = np.nonzero(components == largest)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return torch.tensor(boxes, dtype=torch.float32)


def localization_hits(pred_boxes: Tensor, gt_boxes: Sequence[Tensor], iou: float = 0.5) -> Tensor:
    """N booleans: the predicted box overlaps some ground-truth box with IoU >= ``iou``."""
    return torch.tensor([
        bool(len(gt)) and bool((box_iou(pred[None], gt.float()) >= iou).any()) for pred, gt in zip(pred_boxes, gt_boxes)
    ])


def pointing_game(maps: Tensor, gt_masks: Tensor) -> Tensor:
    """N booleans: the map's maximum lies inside the N x H x W ground-truth mask."""
    flat = maps.flatten(1)
    return gt_masks.flatten(1).gather(1, flat.argmax(1, keepdim=True))[:, 0]


def _masks(maps: Tensor, threshold: float) -> Tensor:
    check_fraction("threshold", threshold, allow_one=False)
    return (normalize_maps(maps) >= threshold)[:, 0]


def mask_coverage(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values |mask ∩ GT| / |GT| (the HINT paper's pointing game)."""
    predicted = _masks(maps, threshold)
    return (predicted & gt_masks).flatten(1).sum(1) / gt_masks.flatten(1).sum(1).clamp_min(1)


def mask_iou(maps: Tensor, gt_masks: Tensor, threshold: float = 0.5) -> Tensor:
    """N values |mask ∩ GT| / |mask ∪ GT|."""
    predicted = _masks(maps, threshold)
    union = (predicted | gt_masks).flatten(1).sum(1)
    return (predicted & gt_masks).flatten(1).sum(1) / union.clamp_min(1)


def mask_area(maps: Tensor, threshold: float = 0.5) -> Tensor:
    """N values: the share of the image in ``map >= threshold``."""
    return _masks(maps, threshold).flatten(1).float().mean(1)


def energy_pointing_game(maps: Tensor, gt_boxes: Sequence[Tensor], energy: float = 0.3) -> Tensor:
    """N booleans: the top pixels holding ``energy`` of the map's mass all lie in the GT boxes."""
    check_fraction("energy", energy)
    weights = normalize_maps(maps).flatten(1)
    order = weights.sort(1, descending=True)
    cumulative = order.values.cumsum(1)
    # keep pixels until the kept mass reaches `energy` of the total (at least one)
    n_keep = (cumulative < energy * cumulative[:, -1:]).sum(1) + 1
    width = maps.shape[-1]
    hits = []
    for n, index, boxes in zip(n_keep.tolist(), order.indices, gt_boxes):
        ys, xs = index[:n] // width, index[:n] % width
        inside = torch.zeros(n, dtype=torch.bool)
        for x1, y1, x2, y2 in boxes.tolist():
            inside |= (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        hits.append(bool(len(boxes)) and bool(inside.all()))
    return torch.tensor(hits)
