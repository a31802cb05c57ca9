"""Box maths: ``torchvision.ops`` where torchvision imports, the same formulas in torch otherwise.

Boxes are ``(x1, y1, x2, y2)`` in pixels, as in torchvision; a box from a mask
spans the mask's extreme pixel coordinates (inclusive).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["box_area", "box_iou", "broadcast_box_iou", "masks_to_boxes"]


@functools.lru_cache(maxsize=None)
def _ops():
    try:
        import torchvision.ops

        return torchvision.ops
    except Exception:  # not installed, or a build that does not match torch
        return None


def box_area(boxes: Tensor) -> Tensor:
    """Areas of ``... x 4`` boxes."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def broadcast_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of ``... x 4`` boxes broadcast against each other (torchvision's formula, element by element)."""
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    return inter / (box_area(a) + box_area(b) - inter)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """N x M IoU of N x 4 and M x 4 boxes."""
    if _ops() is not None:
        return _ops().box_iou(a, b)
    return broadcast_box_iou(a[:, None], b[None])


def masks_to_boxes(masks: Tensor) -> Tensor:
    """K x 4 boxes around K x H x W boolean masks (each must be non-empty)."""
    if masks.numel() == 0:
        return torch.zeros(0, 4)
    if (masks.flatten(1).sum(1) == 0).any():
        raise ValueError("masks: every mask needs at least one pixel to have a box")
    if _ops() is not None:
        return _ops().masks_to_boxes(masks)
    rows, cols = masks.any(2), masks.any(1)
    index_h, index_w = torch.arange(masks.shape[1]), torch.arange(masks.shape[2])
    y1 = torch.where(rows, index_h, masks.shape[1]).amin(1)
    y2 = torch.where(rows, index_h, -1).amax(1)
    x1 = torch.where(cols, index_w, masks.shape[2]).amin(1)
    x2 = torch.where(cols, index_w, -1).amax(1)
    return torch.stack([x1, y1, x2, y2], 1).float()
