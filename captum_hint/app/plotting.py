"""Plotting helpers that hand captum_hint tensors to ``captum.attr.visualization``."""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["to_hwc"]


def to_hwc(tensor: Tensor, index: int = 0) -> np.ndarray:
    """One image of an N x C x H x W tensor as the H x W x C numpy array Captum plots.

    ``captum.attr.visualization.visualize_image_attr`` expects channels last;
    captum_hint's maps (saliency upsampled to the image, responsible masks,
    localization maps) are channels first like every PyTorch tensor::

        from captum.attr import visualization as viz
        viz.visualize_image_attr(to_hwc(maps), to_hwc(images), "blended_heat_map")
    """
    if tensor.dim() != 4:
        raise ValueError(f"tensor: expected N x C x H x W, got shape {tuple(tensor.shape)}")
    if not -tensor.shape[0] <= index < tensor.shape[0]:
        raise IndexError(f"index: {index} out of range for a batch of {tensor.shape[0]}")
    return tensor[index].detach().permute(1, 2, 0).float().cpu().numpy()
