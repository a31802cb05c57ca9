"""Gradient, Gradient x Input and Integrated Gradients stopped at a layer.

Each delegates to Captum's own layer method; this module adds dotted layer
names, concept targets and input checks.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import captum.attr
import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from torch import Tensor, nn

from ..core.checks import check_finite, check_number, check_positive_int
from ._base import LayerSaliency

__all__ = ["LayerGradient", "LayerGradientXActivation", "LayerIntegratedGradients", "mean_layer_gradient"]


def mean_layer_gradient(score: Callable[[Tensor], Tensor], layer: nn.Module, images: Tensor,
                        batch_size: int = 32, attribute_to_layer_input: bool = False) -> Tensor:
    """The mean over ``images`` of ``d score / d layer output``: the layer output's shape without N.

    ``score`` maps a batch to N x 1 scores; gradients come from Captum's
    ``compute_layer_gradients_and_eval``, ``batch_size`` images per pass, so
    memory is bounded whatever the number of images. The caller sets the
    model's mode. ``attribute_to_layer_input``: with respect to the layer's
    input instead.
    """
    check_positive_int("batch_size", batch_size)
    total = None
    for start in range(0, len(images), batch_size):
        (gradients,), _ = compute_layer_gradients_and_eval(score, layer, images[start : start + batch_size], 0,
                                                           attribute_to_layer_input=attribute_to_layer_input)
        summed = gradients.detach().sum(0)
        total = summed if total is None else total + summed
    return total / len(images)


class LayerGradient(LayerSaliency):
    """Gradient of the target score with respect to the layer output.

    HINT's "Gradient" saliency. Computed by Captum's
    ``LayerGradientXActivation(multiply_by_inputs=False)``.

    ``attribute(inputs, target)``: inputs N x 3 x H x W; returns N x C x h x w
    (the layer output's shape).
    """

    multiply_by_inputs = False

    def attribute(
        self,
        inputs: Tensor,
        target=None,
        additional_forward_args: Optional[object] = None,
        attribute_to_layer_input: bool = False,
    ) -> Tensor:
        """Layer saliency for ``inputs`` (N x C x H x W).

        Args:
            inputs: batch of images.
            target: class index, per-sample indices, a concept (set of leaf
                indices) or a per-sample list of concepts.
            additional_forward_args: passed on to ``forward_func``.
            attribute_to_layer_input: attribute to the layer's input instead of
                its output, as in Captum.

        Returns:
            Tensor shaped like the layer output.
        """
        forward, target = self._prepare(inputs, target)
        method = captum.attr.LayerGradientXActivation(
            forward, self.layer, self.device_ids, multiply_by_inputs=self.multiply_by_inputs
        )
        return method.attribute(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
        )


class LayerGradientXActivation(LayerGradient):
    """Gradient x Input at the layer: gradient times the layer's activation.

    HINT's "Gradient x Input" saliency; Captum's ``LayerGradientXActivation``.
    Same ``attribute`` as :class:`LayerGradient`.
    """

    multiply_by_inputs = True


class LayerIntegratedGradients(LayerSaliency):
    """Integrated Gradients in layer-activation space.

    Captum's ``LayerIntegratedGradients``: the layer's activation is moved on a
    straight line from the baseline's activation to the input's, and the
    gradients at the layer along that path are integrated and multiplied by
    the activation difference.

    ``attribute(inputs, target, baselines=None, n_steps=32)``: baselines are
    images (default: zeros); returns N x C x h x w.
    """

    def attribute(
        self,
        inputs: Tensor,
        target=None,
        additional_forward_args: Optional[object] = None,
        baselines: Union[None, int, float, Tensor] = None,
        n_steps: int = 32,
        method: str = "gausslegendre",
        internal_batch_size: Optional[int] = None,
        attribute_to_layer_input: bool = False,
    ) -> Tensor:
        """Layer integrated gradients for ``inputs`` (N x C x H x W).

        Args:
            baselines: input-space baseline (scalar or tensor like ``inputs``);
                ``None`` means zeros.
            n_steps: integration steps.
            method: Captum's integration rule.
            internal_batch_size: evaluate the ``N * n_steps`` path points in
                chunks of this size to bound memory.

        Other arguments are those of :meth:`LayerGradient.attribute`.

        Returns:
            Tensor shaped like the layer output (N x C x h x w).
        """
        check_positive_int("n_steps", n_steps)
        if internal_batch_size is not None:
            check_positive_int("internal_batch_size", internal_batch_size)
        forward, target = self._prepare(inputs, target)
        if isinstance(baselines, Tensor):
            check_finite("baselines", baselines)
            try:
                fits = torch.broadcast_shapes(baselines.shape, inputs.shape) == inputs.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(f"baselines: expected a scalar or a tensor shaped like the inputs "
                                 f"{tuple(inputs.shape)} (or broadcasting to it), got {tuple(baselines.shape)}")
        elif baselines is not None:
            check_number("baselines", baselines)
        method_ = captum.attr.LayerIntegratedGradients(forward, self.layer, self.device_ids)
        return method_.attribute(
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            n_steps=n_steps,
            method=method,
            internal_batch_size=internal_batch_size,
            attribute_to_layer_input=attribute_to_layer_input,
        )
