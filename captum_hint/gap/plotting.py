"""The evidence pyramid (Cheng et al., Fig. 5): one row per layer, maps over the image, arrows parent -> child."""

from __future__ import annotations

from typing import Optional

import numpy as np
from captum.attr import LayerAttribution
from torch import Tensor

from .tree import EvidenceNode

__all__ = ["plot_evidence_pyramid"]


def _overlay(map_: Tensor, size) -> np.ndarray:
    upsampled = LayerAttribution.interpolate(map_[None, None].float(), tuple(size), "bilinear")[0, 0]
    upsampled = upsampled.clamp_min(0)
    return (upsampled / upsampled.max().clamp_min(1e-12)).numpy()


def _title(node: EvidenceNode) -> str:
    names = "\n" + ", ".join(c.split(".")[0] for c, _ in node.concepts[:2]) if node.concepts else ""
    return f"{node.layer} #{node.channel}\nα {node.contribution:.3g} · {100 * node.share:.0f} %{names}"


def plot_evidence_pyramid(tree: EvidenceNode, image: Tensor, class_name: Optional[str] = None, follow: str = "top",
                          figure_width: float = 9.0):
    """Draw a tree as the paper's evidence pyramid.

    The top row is the image with the decision; each row below shows the
    children of the node followed in the row above (its most contributing
    child, ``follow="top"``), each as its activation map upsampled over the
    image, with the channel's peak marked; arrows link the followed node to
    its children.

    Args:
        tree: a root from :meth:`HierarchicalDecomposition.decompose`.
        image: 3 x H x W pixels in [0, 1] (e.g. ``ModelSpec.denormalize``).
        class_name: the decision's name for the title.
        follow: ``"top"``, the only rule so far (the paper's Fig. 5).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    if follow != "top":
        raise ValueError(f"follow: expected 'top', got {follow!r}")
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise ValueError(f"image: expected 3 x H x W pixels in [0, 1], got {getattr(image, 'shape', image)}")
    rows, node = [], tree
    while node.children:
        rows.append(node.children)
        node = node.children[0]
    columns = max([len(r) for r in rows] + [1])
    figure, axes = plt.subplots(len(rows) + 1, columns, figsize=(figure_width, 2.3 * (len(rows) + 1)), squeeze=False)
    pixels = image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    for ax in axes.flat:
        ax.axis("off")
    centre = columns // 2
    axes[0, centre].imshow(pixels)
    name = class_name or ("concept" if tree.channel < 0 else f"class {tree.channel}")
    axes[0, centre].set_title(f"decision: {name}\nscore {tree.contribution:.3g}", fontsize=8)
    parent_ax = axes[0, centre]
    for r, children in enumerate(rows, start=1):
        for c, child in enumerate(children):
            ax = axes[r, c]
            ax.imshow(pixels)
            if child.activation_map is not None:
                ax.imshow(_overlay(child.activation_map, pixels.shape[:2]), cmap="jet", alpha=0.5)
            if child.peak_pixel is not None:
                ax.plot(child.peak_pixel[1], child.peak_pixel[0], "w.", markersize=6)
            ax.set_title(_title(child), fontsize=7)
            figure.add_artist(ConnectionPatch(xyA=(0.5, 0.0), coordsA=parent_ax.transAxes, xyB=(0.5, 1.25),
                                              coordsB=ax.transAxes, arrowstyle="->", color="tab:blue", lw=1.2))
        parent_ax = axes[r, 0]
    figure.tight_layout()
    return figure

