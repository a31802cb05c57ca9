"""A model planted by construction: its answer is known without training.

:class:`MaskCopyNet` reads toy scenes whose input channel ``c`` carries
concept ``c``'s object; its layer ``concept_relu`` copies that channel to
channel ``planted[c]`` and copies a noise channel to the others, and the
logit of concept ``c`` is a multiple of its planted channel's mean. Any
ranking of ``concept_relu``'s channels for concept ``c`` should put
``planted[c]`` first; :func:`constructed_planted_model` wraps it as a
:class:`~captum_hint.datasets.PlantedModel` for
:func:`~captum_hint.truth.score_planted_model`, and :func:`mask_scenes`
gives its scenes. Seconds to run, so it also serves tests and tutorials.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..concepts.hierarchy import ConceptHierarchy
from ..core.boxes import masks_to_boxes
from ..core.checks import check_positive_int
from .planted import PlantedModel

__all__ = ["MaskCopyNet", "constructed_planted_model", "mask_scenes"]


class MaskCopyNet(nn.Module):
    """Two concepts in input channels 0 and 1, noise in channel 2; ``concept_relu`` has 4 channels.

    Channel ``planted[c]`` of ``concept_relu`` copies input channel ``c``;
    the other two copy the noise channel, except a ``multimodal`` channel,
    which copies both concepts' channels (a planted multimodal neuron; the
    logits do not read it); logit ``c`` is ``4 x`` the spatial mean of
    channel ``planted[c]``. The layer feeds the logits through
    global average pooling, so its gradient is the same at every position.
    """

    def __init__(self, planted: Sequence[int] = (3, 1), multimodal: Optional[int] = None):
        super().__init__()
        if len(planted) != 2 or len(set(planted)) != 2 or not all(0 <= p < 4 for p in planted):
            raise ValueError(f"planted: expected two different channels in 0..3, got {list(planted)}")
        if multimodal is not None and (multimodal in planted or not 0 <= multimodal < 4):
            raise ValueError(f"multimodal: expected a channel in 0..3 other than the planted {list(planted)}, "
                             f"got {multimodal}")
        self.concept_conv = nn.Conv2d(3, 4, 1, bias=False)
        with torch.no_grad():
            self.concept_conv.weight.zero_()
            for c, channel in enumerate(planted):
                self.concept_conv.weight[channel, c] = 1.0
            for channel in set(range(4)) - set(planted) - {multimodal}:
                self.concept_conv.weight[channel, 2] = 1.0
            if multimodal is not None:  # answers to both concepts' objects
                self.concept_conv.weight[multimodal, :2] = 1.0
        self.concept_relu = nn.ReLU()
        self.planted = list(planted)

    def forward(self, x: Tensor) -> Tensor:
        """Concept logits, N x 2."""
        return 4 * self.concept_relu(self.concept_conv(x))[:, self.planted].mean(dim=(2, 3))


def mask_scenes(n: int, size: int = 16, side: int = 6, seed: int = 0) -> List[Dict]:
    """``n`` toy scenes for :class:`MaskCopyNet`: one ``side``-pixel square of concept ``i % 2`` each.

    The square's values are graded (0.5 to 1, so NetDissect's top quantile
    falls inside it); channel 2 is noise in [0, 0.5]. Samples carry
    ``image``, ``label``, ``labels``, ``masks``, ``boxes``, ``concept_masks``
    (2 x size x size) and ``present``, like :class:`~captum_hint.datasets.PlantedScenes`.
    """
    check_positive_int("n", n)
    if not 0 < side < size:
        raise ValueError(f"side: expected a square smaller than the scene (0 < side < {size}), got {side}")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    corners = torch.randint(0, size - side, (n, 2), generator=generator)
    grid = torch.arange(size)
    inside = [(grid >= corners[:, a, None]) & (grid < corners[:, a, None] + side) for a in (0, 1)]  # n x size each
    masks = inside[0][:, :, None] & inside[1][:, None, :]
    images = torch.zeros(n, 3, size, size)
    images[torch.arange(n), labels] = masks * (0.5 + 0.5 * torch.rand(n, size, size, generator=generator))
    images[:, 2] = torch.rand(n, size, size, generator=generator) * 0.5
    concept_masks = torch.zeros(n, 2, size, size, dtype=torch.bool)
    concept_masks[torch.arange(n), labels] = masks
    boxes = masks_to_boxes(masks)
    return [{"image": images[i], "label": int(labels[i]), "labels": labels[i : i + 1], "masks": masks[i : i + 1],
             "boxes": boxes[i : i + 1], "concept_masks": concept_masks[i], "present": concept_masks[i].flatten(1).any(1)}
            for i in range(n)]


def constructed_planted_model(planted: Sequence[int] = (3, 1), multimodal: Optional[int] = None) -> PlantedModel:
    """A :class:`MaskCopyNet` (in eval mode) as a planted model of concepts ``a`` and ``b`` (hierarchy whole → a, b).

    With ``multimodal``, that channel answers to both ``a`` and ``b``
    (``multimodal_ = {multimodal: ["a", "b"]}``).
    """
    model = MaskCopyNet(planted, multimodal).eval()
    return PlantedModel(model, list(planted), ConceptHierarchy.from_paths(["whole/a", "whole/b"]),
                        multimodal_={} if multimodal is None else {multimodal: ["a", "b"]})
