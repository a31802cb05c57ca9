"""gAP: gradient-based activation propagation (Cheng et al., TPAMI; Sec. 3.1, Eq. 2-5).

A *decision* — a class or concept score, or one feature ``F^{l+1}_{k',x,y}``
of a higher layer — is decomposed onto the channels of a lower layer ``l``:

* activation maps ``A^l_k = G^l_k * F^l_k`` (Eq. 3), with ``G^l`` the gradient
  of the decision with respect to the layer's output ``F^l`` (Eq. 2);
* channel contributions ``alpha_k = mean_{x,y} A^l_{k,x,y}`` (Eq. 4);
* each channel's peak ``argmax_{x,y} A^l_{k,x,y}`` (Eq. 5), the feature that
  the hierarchical decomposition decomposes next.

At the last convolutional layer of a network that ends in global average
pooling and a linear layer, ``sum_k A^L_k`` is Captum's ``LayerGradCam``
before its ReLU (Eq. 11).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple, Union

import torch
from captum._utils.common import _select_targets
from captum._utils.gradient import compute_layer_gradients_and_eval
from torch import Tensor, nn

from ._base import LayerSaliency, LayerSpec, check_spatial, resolve_layer

__all__ = ["LayerActivationPropagation", "Propagation", "NeuronSelector"]

#: A feature of the source layer: a channel (at its peak, per image), a
#: ``(channel, row, col)`` tuple, an N x 3 tensor (one per image) or an
#: N x S x 3 tensor (S decisions per image, propagated in one backward pass).
NeuronSelector = Union[int, tuple, Tensor]


class Propagation(NamedTuple):
    """What one gAP call gives (``[S x]`` only for N x S x 3 selectors).

    Attributes:
        maps: N x [S x] K x H x W activation maps ``A = G * F`` (Eq. 3).
        contributions: N x [S x] K channel contributions, the maps' spatial means (Eq. 4).
        peaks: N x [S x] K x 2 (row, col) of each map's maximum (Eq. 5).
        features: N x K x H x W, the layer's output ``F``.
        decisions: N x [S] values of the decomposed decisions.
    """

    maps: Tensor
    contributions: Tensor
    peaks: Tensor
    features: Tensor
    decisions: Tensor


class _StopForward(Exception):
    """Raised by a hook once the source layer has produced its output: nothing above is needed."""


def peak_positions(maps: Tensor) -> Tensor:
    """(row, col) of the maximum of every ... x H x W map: ... x 2 (ties: the first in row-major order)."""
    width = maps.shape[-1]
    flat = maps.flatten(-2).argmax(-1)
    return torch.stack([flat // width, flat % width], -1)


def forward_between(model: nn.Module, inputs: Tensor, lower: Optional[nn.Module], upper: nn.Module,
                    additional_forward_args=None) -> Tuple[Tensor, Tensor]:
    """One forward pass, stopped once ``upper`` has run, with ``lower``'s output (or the input) as a graph leaf.

    Args:
        model: the network.
        inputs: N x C x H x W.
        lower: the lower layer, or ``None`` for the model's input.
        upper: the higher layer; its output must be N x K' x H' x W'.

    Returns:
        ``(features N x K x H x W, the leaf; higher N x K' x H' x W', upper's output, in the leaf's graph)``.

    Raises:
        ValueError: ``upper`` does not run, runs before ``lower`` or does not depend on it, or its output is not 4-D.
    """
    captured = {}
    order: List[str] = []

    def keep_lower(module, args, output):
        order.append("lower")
        leaf = output.detach().requires_grad_()
        captured["lower"] = leaf
        return leaf.clone()  # a later in-place op (ReLU(inplace=True)) must not touch the leaf

    def stop_at_upper(module, args, output):
        order.append("upper")
        captured["upper"] = output
        raise _StopForward

    handles = [upper.register_forward_hook(stop_at_upper)]
    if lower is not None:
        handles.append(lower.register_forward_hook(keep_lower))
    else:
        captured["lower"] = inputs.detach().requires_grad_()
    args = additional_forward_args if isinstance(additional_forward_args, tuple) else (
        () if additional_forward_args is None else (additional_forward_args,))
    try:
        with torch.enable_grad():
            model(captured["lower"] if lower is None else inputs, *args)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if "upper" not in captured:
        raise ValueError("source_layer: it did not run in the model's forward pass")
    if lower is not None and (not order or order[0] != "lower"):
        raise ValueError("layer, source_layer: the source layer runs before the layer; give the higher layer as "
                         "source_layer (layers in forward order)")
    features, higher = captured["lower"], captured["upper"]
    if not isinstance(higher, Tensor) or higher.dim() != 4:
        shape = tuple(higher.shape) if isinstance(higher, Tensor) else type(higher).__name__
        raise ValueError(f"source_layer: expected an output shaped (N, K, H, W), got {shape}")
    if not higher.requires_grad:
        raise ValueError("layer, source_layer: the source layer's output does not depend on the layer's output")
    return features, higher


def propagate_between(
    model: nn.Module,
    inputs: Tensor,
    lower: Optional[nn.Module],
    upper: nn.Module,
    selectors: Tensor,
    additional_forward_args=None,
) -> tuple:
    """Gradients of upper-layer features with respect to a lower layer's output (or the input).

    One forward pass (:func:`forward_between`), then one backward pass
    per decision slot over the kept graph, each for all N images. On a CPU
    that is 1.1-6x faster than one pass batched over the slots
    (``is_grads_batched``, torch's legacy vmap; ``benchmarks/gap_backward.py``).

    Args:
        model: the network.
        inputs: N x C x H x W.
        lower: the lower layer, or ``None`` for the model's input.
        upper: the higher layer; its output must be N x K' x H' x W'.
        selectors: N x S x 3 long tensor of (channel, row, col) of ``upper``'s output.

    Returns:
        ``(gradients N x S x K x H x W, features N x K x H x W, decisions N x S)``.

    Raises:
        ValueError: ``upper`` runs before ``lower`` or does not depend on it,
            or a selector is out of range.
    """
    features, higher = forward_between(model, inputs, lower, upper, additional_forward_args)
    n, s = selectors.shape[:2]
    channel, row, col = selectors.unbind(-1)
    _, k_hi, h_hi, w_hi = higher.shape
    if selectors.shape[0] != higher.shape[0]:
        raise ValueError(f"neuron_selector: expected {higher.shape[0]} per-image selectors, got {selectors.shape[0]}")
    for name, index, size in (("channel", channel, k_hi), ("row", row, h_hi), ("col", col, w_hi)):
        if index.numel() and (index.min() < 0 or index.max() >= size):
            raise ValueError(
                f"neuron_selector: {name} {int(index.max() if index.max() >= size else index.min())} is out of "
                f"range for a source layer output of shape {tuple(higher.shape[1:])} (expected 0..{size - 1})"
            )
    images = torch.arange(n, device=higher.device)
    decisions = higher[images[:, None], channel, row, col]  # N x S
    gradients = torch.empty(n, s, *features.shape[1:], dtype=features.dtype, device=features.device)
    pick = torch.zeros_like(higher)  # a one-hot gradient output per slot: every image's decision in that slot
    for slot in range(s):
        picked = (images, channel[:, slot], row[:, slot], col[:, slot])
        pick[picked] = 1.0
        (gradient,) = torch.autograd.grad(higher, features, pick, retain_graph=slot < s - 1, allow_unused=True)
        if gradient is None:
            raise ValueError("layer, source_layer: the source layer's output does not depend on the layer's output")
        gradients[:, slot] = gradient
        pick[picked] = 0.0
    return gradients, features.detach(), decisions.detach()


def resolve_selector(selector: NeuronSelector, n: int, upper_features: Optional[Tensor]) -> Tensor:
    """An N x S x 3 (channel, row, col) tensor from any :data:`NeuronSelector` form.

    ``upper_features`` (the source layer's output) is needed only for a bare
    channel, whose position is its peak in each image.
    """
    if isinstance(selector, bool):
        raise TypeError("neuron_selector: expected a channel, a (channel, row, col) tuple or a tensor, got a bool")
    if isinstance(selector, int) or (isinstance(selector, Tensor) and selector.dim() == 1):
        channels = torch.as_tensor(selector).reshape(-1).long()
        if channels.numel() == 1:
            channels = channels.expand(n)
        if channels.numel() != n:
            raise ValueError(f"neuron_selector: got {channels.numel()} channels for a batch of {n}")
        if upper_features is None:
            raise ValueError("neuron_selector: a channel alone needs the source layer's output for its peak")
        k = upper_features.shape[1]
        if channels.min() < 0 or channels.max() >= k:
            raise ValueError(f"neuron_selector: channel {int(channels.max())} is out of range (0..{k - 1})")
        maps = upper_features[torch.arange(n), channels.to(upper_features.device)]
        peaks = peak_positions(maps).cpu()
        return torch.cat([channels[:, None], peaks], 1)[:, None]
    if isinstance(selector, tuple):
        if len(selector) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in selector):
            raise ValueError(f"neuron_selector: expected a (channel, row, col) tuple of ints, got {selector!r}")
        return torch.tensor(selector).view(1, 1, 3).expand(n, 1, 3)
    if isinstance(selector, Tensor) and not selector.is_floating_point() and selector.dtype != torch.bool:
        if selector.dim() == 2 and selector.shape[1] == 3:
            return selector.long()[:, None]
        if selector.dim() == 3 and selector.shape[2] == 3:
            return selector.long()
    raise TypeError(
        "neuron_selector: expected a channel (int), a (channel, row, col) tuple, or an integer tensor shaped "
        f"N x 3 or N x S x 3; got {selector!r}"
    )


def layer_output(model: nn.Module, layer: nn.Module, inputs: Tensor, layer_input: bool = False,
                 grad: bool = False) -> Tensor:
    """The output (or, with ``layer_input``, the first input) of ``layer`` for ``inputs``.

    The forward stops as soon as the layer has run: nothing above it is computed.

    Args:
        model: the network.
        layer: one of its modules.
        inputs: N x C x H x W.
        layer_input: return the layer's first input instead of its output.
        grad: keep the autograd graph (e.g. to optimize the inputs); by default no gradients.

    Returns:
        The layer's output (or input) for the batch, e.g. N x K x h x w.
    """
    captured = {}

    def stop(module, args, output):
        captured["out"] = args[0] if layer_input else output
        raise _StopForward

    handle = layer.register_forward_hook(stop)
    try:
        with torch.set_grad_enabled(grad):
            model(inputs)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if "out" not in captured:
        raise ValueError("layer: it did not run in the model's forward pass")
    return captured["out"]


class LayerActivationPropagation(LayerSaliency):
    """gAP: a decision decomposed onto the channels of a layer (Cheng et al., Eq. 2-5).

    The decision is either the model's score for ``target`` (a class index,
    per-sample indices, a concept set or per-sample concepts, as in every
    captum_hint attribution), or one feature of a higher layer
    ``source_layer`` chosen by ``neuron_selector`` (as in Captum's neuron
    methods): a channel (at that channel's peak in each image), a
    ``(channel, row, col)`` tuple, an N x 3 tensor, or an N x S x 3 tensor of
    S decisions per image, all propagated in one backward pass.

    ``attribute`` returns the activation maps ``A = G * F``, shaped like the
    layer output (N x K x H x W, or N x S x K x H x W for S decisions);
    :meth:`propagate` returns them with the contributions and peaks.

    Args:
        forward_func: the model.
        layer: the lower layer (module or dotted name).
    """

    def propagate(
        self,
        inputs: Tensor,
        target=None,
        neuron_selector: Optional[NeuronSelector] = None,
        source_layer: Optional[LayerSpec] = None,
        additional_forward_args=None,
    ) -> Propagation:
        """Activation maps, contributions and peaks of one decision per image (or S).

        Args:
            inputs: N x C x H x W images.
            target: the decision as a model score (when ``neuron_selector`` is None).
            neuron_selector: the decision as a feature of ``source_layer``.
            source_layer: the higher layer (module or dotted name) that
                ``neuron_selector`` indexes.
            additional_forward_args: passed on to the model.

        Returns:
            :class:`Propagation`.
        """
        if neuron_selector is None:
            if source_layer is not None:
                raise ValueError("source_layer: only used with a neuron_selector")
            forward, target = self._prepare(inputs, target)
            recorded = {}

            def recording(*args, **kwargs):  # keeps the scores of the one forward pass
                recorded["scores"] = forward(*args, **kwargs)
                return recorded["scores"]

            (gradients,), (features,) = compute_layer_gradients_and_eval(
                recording, self.layer, inputs, target, additional_forward_args, device_ids=self.device_ids)
            decisions = _select_targets(recorded["scores"], target).detach().reshape(len(inputs))
            check_spatial(self.layer, features, "gAP")
            maps = (gradients * features).detach()
            return Propagation(maps, maps.mean((-2, -1)), peak_positions(maps), features.detach(), decisions)
        if target is not None:
            raise ValueError("target, neuron_selector: give one decision, not both")
        if source_layer is None:
            raise ValueError("source_layer: a neuron_selector needs the higher layer it indexes")
        self._prepare(inputs, None)
        upper = resolve_layer(self.forward_func, source_layer)
        if upper is self.layer:
            raise ValueError("layer, source_layer: the source layer must be a higher layer than the layer")
        needs_peaks = isinstance(neuron_selector, int) or (isinstance(neuron_selector, Tensor) and neuron_selector.dim() == 1)
        upper_features = layer_output(self.forward_func, upper, inputs) if needs_peaks else None
        selectors = resolve_selector(neuron_selector, len(inputs), upper_features)
        gradients, features, decisions = propagate_between(
            self.forward_func, inputs, self.layer, upper, selectors.to(inputs.device), additional_forward_args)
        check_spatial(self.layer, features, "gAP")
        maps = gradients * features[:, None]
        squeeze = not (isinstance(neuron_selector, Tensor) and neuron_selector.dim() == 3)
        if squeeze:
            maps, decisions = maps[:, 0], decisions[:, 0]
        return Propagation(maps, maps.mean((-2, -1)), peak_positions(maps), features, decisions)

    def attribute(
        self,
        inputs: Tensor,
        target=None,
        neuron_selector: Optional[NeuronSelector] = None,
        source_layer: Optional[LayerSpec] = None,
        additional_forward_args=None,
    ) -> Tensor:
        """The activation maps ``A = G * F``: N x K x H x W (N x S x K x H x W for S decisions).

        Arguments as in :meth:`propagate`.
        """
        return self.propagate(inputs, target, neuron_selector, source_layer, additional_forward_args).maps

