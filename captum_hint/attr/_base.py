"""What every layer saliency method shares: layer lookup, input and target checks."""

from __future__ import annotations

import difflib
import functools
from typing import Callable, List, Optional, Union

import torch
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

from ..concepts.scores import ConceptScore, is_concept, is_concept_list
from ..core.checks import check_finite
from ..core.model_state import evaluation_mode

LayerSpec = Union[str, nn.Module]


def _root_module(forward_func: Callable) -> nn.Module:
    """The model whose submodules a dotted layer name refers to."""
    if isinstance(forward_func, ConceptScore):
        return _root_module(forward_func.forward_func)
    if isinstance(forward_func, nn.Module):
        return forward_func
    # A bound method such as ``model.forward`` or a partial still names its model.
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module):
        return owner
    raise TypeError(
        "layer: a layer given by name needs forward_func to be an nn.Module "
        f"(or a bound method of one); got {type(forward_func).__name__}. "
        "Pass the layer module itself instead."
    )


def resolve_layer(forward_func: Callable, layer: LayerSpec) -> nn.Module:
    """The layer module for ``layer``: a module, or a dotted name such as ``"features.30"``.

    Raises:
        ValueError: the name is not a submodule; the message lists close names.
    """
    if isinstance(layer, nn.Module):
        return layer
    if not isinstance(layer, str):
        raise TypeError(
            f"layer: expected an nn.Module or a dotted name such as 'features.30', "
            f"got {type(layer).__name__}"
        )
    root = _root_module(forward_func)
    try:
        return root.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in root.named_modules() if name]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.6)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(
            f"layer: {layer!r} is not a submodule of {type(root).__name__}.{hint} "
            "List them with [name for name, _ in model.named_modules()]."
        ) from None


def check_image_batch(inputs: Tensor, name: str = "inputs") -> None:
    """Raise unless ``inputs`` is a floating N x C x H x W tensor (errors name the argument ``name``)."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        hint = " Add a batch dimension with inputs.unsqueeze(0)." if inputs.dim() == 3 else ""
        raise ValueError(
            f"{name}: expected a batch of images shaped (N, C, H, W), got a "
            f"{inputs.dim()}-D tensor of shape {tuple(inputs.shape)}.{hint}"
        )
    if not inputs.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {inputs.dtype}")
    if 0 in inputs.shape:
        raise ValueError(f"{name}: expected at least one image of at least one channel and pixel, got shape "
                         f"{tuple(inputs.shape)}")
    check_finite(name, inputs, "images must be finite")


def check_spatial(layer, output: Tensor, who: str) -> Tensor:
    """Return ``output`` if it is N x K x H x W; else name the layer, its output's shape and ``who`` needs it."""
    if output.dim() != 4:
        raise ValueError(f"layer: {who} needs a spatial layer (output N x K x H x W); {layer!r} gives "
                         f"{tuple(output.shape)}")
    return output


class _CheckedTargets(nn.Module):
    """Pass-through forward that fails clearly when a class target is out of range."""

    def __init__(self, forward_func: Callable, high: int):
        super().__init__()
        self.forward_func = forward_func
        self.high = high

    def forward(self, *args, **kwargs) -> Tensor:
        out = self.forward_func(*args, **kwargs)
        num_outputs = out.shape[1] if out.dim() >= 2 else 1
        if self.high >= num_outputs:
            raise ValueError(
                f"target: class index {self.high} is out of range for a model with "
                f"{num_outputs} outputs (expected 0..{num_outputs - 1})"
            )
        return out


def prepare_target(forward_func: Callable, target, batch_size: int):
    """Turn a HINT target into a Captum (forward_func, target) pair.

    ``target`` may be ``None``, a class index, a list/tensor of per-sample
    class indices, a concept (a ``set``/``frozenset`` of leaf indices), or a
    per-sample list of concepts. Concepts become columns of a
    :class:`~captum_hint.concepts.ConceptScore` forward.
    """
    if is_concept(target):
        if not target:
            raise ValueError("target: a concept needs at least one leaf class, got an empty set")
        return ConceptScore(forward_func, [target], argument="target"), 0
    if is_concept_list(target):
        if len(target) != batch_size:
            raise ValueError(
                f"target: got {len(target)} per-sample concepts for a batch of {batch_size}"
            )
        unique: List[frozenset] = []
        column = {}
        for concept in target:
            key = frozenset(int(c) for c in concept)
            if key not in column:
                column[key] = len(unique)
                unique.append(key)
        index = [column[frozenset(int(c) for c in concept)] for concept in target]
        return ConceptScore(forward_func, unique, argument="target"), index
    if target is None:
        return forward_func, None
    if isinstance(target, int):
        indices = torch.tensor([target])
    elif isinstance(target, Tensor) and target.dtype == torch.bool:
        raise TypeError(
            "target: got a bool tensor; expected class indices (an integer tensor), e.g. "
            "mask.nonzero().flatten() if the booleans mark classes"
        )
    elif isinstance(target, Tensor) and not target.is_floating_point():
        indices = target.reshape(-1)
    elif isinstance(target, (list, tuple)) and all(isinstance(t, int) for t in target):
        indices = torch.tensor(list(target))
    else:
        raise TypeError(
            "target: expected a class index, a list/tensor of per-sample class "
            "indices, a concept (set of leaf indices) or a list of concepts; got "
            f"{target!r}"
        )
    if indices.numel() not in (1, batch_size):
        raise ValueError(
            f"target: got {indices.numel()} per-sample targets for a batch of {batch_size}"
        )
    if indices.numel() and int(indices.min()) < 0:
        raise ValueError(f"target: class index {int(indices.min())} is negative; expected 0..C-1 (a negative "
                         "index is not read from the end)")
    return _CheckedTargets(forward_func, int(indices.max())), target


def _guarded(attribute: Callable) -> Callable:
    @functools.wraps(attribute)
    def guarded(self, *args, **kwargs):
        try:
            model = _root_module(self.forward_func)
        except TypeError:  # a plain function: no module whose state could change
            return attribute(self, *args, **kwargs)
        with evaluation_mode(model, type(self).__name__):
            return attribute(self, *args, **kwargs)

    return guarded


class GuardsModel:
    """Mixin: each subclass's ``attribute`` (and ``propagate``) runs the model in eval mode, one call per model at
    a time.

    Through :func:`~captum_hint.core.model_state.evaluation_mode`: a model in
    train mode is explained as at inference (its BatchNorm statistics stay as
    they were) and comes back in train mode; a second thread's call on the
    same model waits until this one has removed its hooks and restored it.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("attribute", "propagate"):
            if name in vars(cls):
                setattr(cls, name, _guarded(vars(cls)[name]))


class LayerSaliency(GuardsModel, LayerAttribution, GradientAttribution):
    """Base of HINT's modified saliency methods stopped at a hidden layer.

    Args:
        forward_func: the model (or any forward function) returning N x C scores.
        layer: the layer module, or its dotted name (``"features.30"``,
            ``"_blocks.10"``) when ``forward_func`` is an ``nn.Module``.
        device_ids: as in Captum, for ``DataParallel`` models.

    ``attribute`` returns a tensor shaped like the layer output (N x C x H x W).
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: LayerSpec,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        module = resolve_layer(forward_func, layer)
        LayerAttribution.__init__(self, forward_func, module, device_ids)
        GradientAttribution.__init__(self, forward_func)

    def _prepare(self, inputs: Tensor, target):
        check_image_batch(inputs)
        return prepare_target(self.forward_func, target, inputs.shape[0])
