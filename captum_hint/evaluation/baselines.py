"""Baselines that HINT's localization and neuron rankings are compared with, from Captum.

* :func:`gradcam_maps`: Captum's ``LayerGradCam`` on a concept's score;
* :func:`conductance_ranking`: Captum's ``LayerConductance`` as a neuron ranking.
"""

from __future__ import annotations

from typing import Sequence

from captum.attr import LayerAttribution, LayerConductance, LayerGradCam
from torch import Tensor, nn

from ..attr._base import resolve_layer
from ..concepts.scores import ConceptScore
from ..core.checks import check_positive_int
from ..core.model_state import evaluation_mode

__all__ = ["gradcam_maps", "conductance_ranking"]


def gradcam_maps(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], size=None) -> Tensor:
    """Grad-CAM (Captum ``LayerGradCam``) for a concept's score, upsampled: N x 1 x H x W.

    The target is the concept's score (log of the summed softmax over its
    leaves), so Grad-CAM and HINT localize the same concept.
    """
    method = LayerGradCam(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    with evaluation_mode(model, "gradcam_maps"):
        maps = method.attribute(images, target=0, relu_attributions=True)
    return LayerAttribution.interpolate(maps.detach(), tuple(size or images.shape[-2:]), "bilinear")


def conductance_ranking(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], n_steps: int = 8,
                        batch_size: int = 8) -> Tensor:
    """A neuron ranking from Captum's ``LayerConductance`` for a concept: D scores.

    Conductance of each channel, summed over positions and averaged over the images.
    """
    check_positive_int("n_steps", n_steps)
    check_positive_int("batch_size", batch_size)
    method = LayerConductance(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    total = None
    with evaluation_mode(model, "conductance_ranking"):
        for start in range(0, len(images), batch_size):
            conductance = method.attribute(images[start : start + batch_size], target=0, n_steps=n_steps)
            summed = conductance.detach().sum(dim=(2, 3)).sum(0)
            total = summed if total is None else total + summed
    return (total / len(images)).cpu()
