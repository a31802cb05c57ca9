"""AfI's feature occlusion at a layer (Attacking for Interpretability, CVPR 2020, Eq. 6).

An input-space occluder ``delta`` (one for a whole class, from
:class:`~captum_hint.afi.GlobalFeatureOccluder`) is subtracted from every
image; the attribution of a layer unit is the drop of its activation,
``f_l(x) - f_l(x - delta)``, per image and shaped like the layer output. The
class-wide feature importance (Eq. 6-7) is its mean over the class's images
with negatives zeroed; :mod:`captum_hint.afi` builds it.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from captum.attr import LayerAttribution
from torch import Tensor

from ..core.checks import check_finite
from ._base import GuardsModel, LayerSpec, check_image_batch, resolve_layer
from .activation_propagation import layer_output

__all__ = ["LayerFeatureOcclusion", "occlude"]


def occlude(inputs: Tensor, delta: Tensor, valid_range: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
    """``x - delta``, clamped per channel into ``valid_range``.

    Args:
        inputs: N x C x H x W.
        delta: C x H x W (or N x C x H x W, or anything that broadcasts).
        valid_range: (low, high), C values each; None: no clamping.

    Returns:
        N x C x H x W.
    """
    if not isinstance(delta, Tensor):
        raise TypeError(f"delta: expected a tensor, got {type(delta).__name__}")
    check_finite("delta", delta, "the occluder must be finite")
    occluded = inputs - delta.to(inputs.device, inputs.dtype)
    if valid_range is None:
        return occluded
    low, high = (check_finite("valid_range", torch.as_tensor(v)).to(inputs.device, inputs.dtype).view(1, -1, 1, 1)
                 for v in valid_range)
    if bool((low > high).any()):
        raise ValueError(f"valid_range: low exceeds high in channel(s) {(low > high).flatten().nonzero().flatten().tolist()}"
                         "; expected (low, high) with low <= high per channel")
    return torch.maximum(torch.minimum(occluded, high), low)


class LayerFeatureOcclusion(GuardsModel, LayerAttribution):
    """Per-image activation drop of a layer when an input occluder is subtracted.

    ``attribute(inputs, delta)`` returns ``f_l(x) - f_l(x - delta)``, shaped
    like the layer output (N x C x H x W). Two forward passes of the batch;
    no gradients.

    Args:
        forward_func: the model.
        layer: module or dotted name.
    """

    def __init__(self, forward_func: Callable[..., Tensor], layer: LayerSpec):
        LayerAttribution.__init__(self, forward_func, resolve_layer(forward_func, layer))

    def attribute(self, inputs: Tensor, delta: Tensor,
                  valid_range: Optional[Tuple[Tensor, Tensor]] = None,
                  attribute_to_layer_input: bool = False) -> Tensor:
        """Activation drops ``f_l(x) - f_l(clamp(x - delta))``: the layer's shape, per image.

        Args:
            inputs: N x C x H x W images (normalized for the model).
            delta: C x H x W occluder (or N x C x H x W).
            valid_range: per-channel (low, high) of valid inputs, applied after subtracting.
            attribute_to_layer_input: the drops of the layer's (first) input
                instead of its output, as in Captum's layer methods; e.g. the
                rectified features a projection convolution reads.
        """
        check_image_batch(inputs)
        if not isinstance(delta, Tensor):
            raise TypeError(f"delta: expected a C x H x W tensor, got {type(delta).__name__}")
        if delta.shape[-3:] != inputs.shape[-3:]:
            raise ValueError(f"inputs, delta: the occluder's shape {tuple(delta.shape)} differs from the images' "
                             f"{tuple(inputs.shape[-3:])}")
        return (layer_output(self.forward_func, self.layer, inputs, attribute_to_layer_input)
                - layer_output(self.forward_func, self.layer, occlude(inputs, delta, valid_range),
                               attribute_to_layer_input))
