"""Semantic backpropagation (Gu & Tresp, Sec. 5): input attributions that, on the way back, suppress
the units of one layer that are irrelevant to the target concept.

At the chosen layer the backward signal is multiplied by ``1[v_hat_c > t]``,
``v_hat_c = v_c / max(v_c)`` for the target concept's semantic vector ``v_c``
(from :class:`~captum_hint.sevec.SemanticVectors`; ``t = 0.5`` in the paper):
``R^l = R^{l+1} 1[R^{l+1} > 0 and X^l > 0 and v_hat > t]`` for the guided
version, which also keeps Guided Backprop's ReLU rule everywhere, and
Gradient x Input with the same suppression for the other. One backward pass;
every hook is removed afterwards. Without a semantic vector both reduce to
their plain versions.
"""

from __future__ import annotations

import contextlib
from typing import Callable, List, Optional

from captum._utils.gradient import compute_gradients
from captum.attr import GradientAttribution
from torch import Tensor

from ..core.checks import check_finite, check_fraction
from ._base import GuardsModel, LayerSpec, check_image_batch, prepare_target, resolve_layer
from .guided_backprop import LayerGuidedBackprop

__all__ = ["SemanticGuidedBackprop", "SemanticGradientXInput", "semantic_mask"]


def semantic_mask(semantic_vector: Tensor, threshold: float = 0.5) -> Tensor:
    """``1[v / max(v) > threshold]`` for a D vector or N x D vectors (one per sample)."""
    check_fraction("threshold", threshold, allow_zero=True, allow_one=False)
    if not isinstance(semantic_vector, Tensor) or semantic_vector.dim() not in (1, 2):
        raise ValueError("semantic_vector: expected a D tensor or an N x D tensor of semantic vectors")
    check_finite("semantic_vector", semantic_vector)
    peak = semantic_vector.amax(-1, keepdim=True)
    if bool((peak <= 0).any()):
        raise ValueError("semantic_vector: every unit is <= 0, so no unit is relevant to the concept (a semantic "
                         "vector holds the share of the concept's images activating each unit)")
    return semantic_vector / peak > threshold


class _SemanticAttribution(GuardsModel, GradientAttribution):
    """Input attributions with the backward signal masked at one layer by a semantic vector.

    Args:
        forward_func: the model.
        layer: the layer whose output (or input, ``use_layer_input``) is masked;
            its flattened size (or channel count, for a pooled vector) is D.
        use_layer_input: mask the layer's input instead of its output.
    """

    def __init__(self, forward_func: Callable[..., Tensor], layer: LayerSpec, use_layer_input: bool = False):
        GradientAttribution.__init__(self, forward_func)
        self.layer = resolve_layer(forward_func, layer)
        self.use_layer_input = use_layer_input

    @contextlib.contextmanager
    def _masked(self, mask: Optional[Tensor], batch: int):
        """Multiply the gradient reaching the layer's output (or input) by ``mask``."""
        if mask is None:
            yield
            return
        handles: List = []

        def apply(value: Tensor) -> None:
            flat = value[0].numel() if value.dim() > 1 else 1
            m = mask.to(value.device, value.dtype)
            m = m.expand(batch, -1) if m.dim() == 1 else m
            if m.shape[1] == flat:
                shaped = m.view(value.shape)
            elif value.dim() == 4 and m.shape[1] == value.shape[1]:  # a pooled (per-channel) vector
                shaped = m[:, :, None, None]
            else:
                raise ValueError(f"semantic_vector: has {m.shape[1]} units; the layer gives "
                                 f"{tuple(value.shape[1:])} ({flat} flattened, {value.shape[1]} channels)")
            handles.append(value.register_hook(lambda grad: grad * shaped))

        if self.use_layer_input:
            handles.append(self.layer.register_forward_pre_hook(lambda module, args: apply(args[0])))
        else:
            handles.append(self.layer.register_forward_hook(lambda module, args, output: apply(output)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _gradients(self, inputs: Tensor, target, semantic_vector, threshold, additional_forward_args):
        check_image_batch(inputs)
        forward, target = prepare_target(self.forward_func, target, len(inputs))
        mask = None if semantic_vector is None else semantic_mask(semantic_vector, threshold)
        if mask is not None and mask.dim() == 2 and mask.shape[0] != len(inputs):
            raise ValueError(f"semantic_vector: got {mask.shape[0]} vectors for a batch of {len(inputs)}")
        leaf = inputs.detach().requires_grad_()  # the caller's tensor keeps its own flag
        with self._masked(mask, len(inputs)), self._guide():
            (gradients,) = compute_gradients(forward, (leaf,), target, additional_forward_args)
        return gradients

    def _guide(self):
        return contextlib.nullcontext()


class SemanticGradientXInput(_SemanticAttribution):
    """Gradient x Input with the layer's irrelevant units suppressed in the backward pass.

    ``attribute(inputs, target, semantic_vector, threshold=0.5)`` returns
    N x C x H x W, like Captum's ``InputXGradient``.
    """

    def attribute(self, inputs: Tensor, target=None, semantic_vector: Optional[Tensor] = None,
                  threshold: float = 0.5, additional_forward_args=None) -> Tensor:
        """Gradient x Input with the suppression: N x C x H x W.

        Args:
            inputs: N x C x H x W.
            target: class index, per-sample indices, a concept set or per-sample concepts.
            semantic_vector: the target concept's ``v_c`` (D) or one per sample (N x D); None: plain.
            threshold: units with ``v_hat <= threshold`` are suppressed.
        """
        return (self._gradients(inputs, target, semantic_vector, threshold, additional_forward_args)
                * inputs).detach()


class SemanticGuidedBackprop(_SemanticAttribution):
    """Guided Backprop with the layer's irrelevant units suppressed (the paper's semantic GuidedBP).

    Every ReLU (modules and functional calls, as in
    :class:`~captum_hint.attr.LayerGuidedBackprop`) passes only positive
    gradients back; at the layer, units whose ``v_hat <= threshold`` pass none.
    ``attribute`` returns N x C x H x W.
    """

    def __init__(self, forward_func: Callable[..., Tensor], layer: LayerSpec, use_layer_input: bool = False):
        super().__init__(forward_func, layer, use_layer_input)
        self._guided = LayerGuidedBackprop(forward_func, self.layer)

    def _guide(self):
        return self._guided.guiding(start_at_layer=False)

    def attribute(self, inputs: Tensor, target=None, semantic_vector: Optional[Tensor] = None,
                  threshold: float = 0.5, additional_forward_args=None) -> Tensor:
        """Arguments as in :meth:`SemanticGradientXInput.attribute`."""
        return self._gradients(inputs, target, semantic_vector, threshold, additional_forward_args).detach()

