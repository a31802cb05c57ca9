"""The last layer of each stage of a CNN, found from one probe forward pass.

A *stage* is a run of layers with the same output resolution (Cheng et al.,
Sec. 3.2). The candidates are the network's *units*: modules that are not
containers (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) and whose
every ancestor is a container or the model, so that units never nest
(VGG's ``features.3``, ResNet's ``layer1.0``, EfficientNet's ``_blocks.4``).
Units called more than once per forward (a shared activation module) and
pooling modules (a resolution change of their own, not a stage) are skipped;
units whose output is not N x C x H x W are too. The last unit of each run of
equal H x W is a stage's end: VGG16 gives ``features.3, 8, 15, 22, 29``
(conv1_2 ... conv5_3, after their ReLU), ResNet50 ``relu, layer1.2, layer2.3,
layer3.5, layer4.2``, EfficientNet-Lite0 ``_blocks.0, 2, 4, 10, _bn1``.
"""

from __future__ import annotations

from collections import Counter
from typing import List, Sequence

import torch
from torch import nn

from .model_state import evaluation_mode

__all__ = ["stage_layers", "forward_order", "stage_groups", "randomize_parameters"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _units(model: nn.Module) -> List[str]:
    containers = {""} | {name for name, m in model.named_modules() if isinstance(m, _CONTAINERS)}
    return [name for name, m in model.named_modules()
            if name and name not in containers and name.rpartition(".")[0] in containers]


def _probe(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]):
    """(name, output shape) for ``names`` in the order their forward finished, and call counts."""
    calls: list = []
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(
        lambda m, i, o, name=name: calls.append((name, tuple(o.shape) if isinstance(o, torch.Tensor) else None)))
        for name in names]
    try:
        device = next(model.parameters(), torch.zeros(())).device
        with torch.no_grad(), evaluation_mode(model, "stage_layers"):
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return calls, Counter(name for name, _ in calls)


def forward_order(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int] = (3, 224, 224),
                  spatial: bool = False) -> List[str]:
    """``layers`` sorted by when their forward finishes (each must run exactly once; with ``spatial``, each
    must give an N x K x H x W tensor)."""
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules or not name]
    if unknown:
        raise ValueError(f"layers: {', '.join(map(repr, unknown))} not a submodule of {type(model).__name__}")
    calls, counts = _probe(model, layers, input_shape)
    missing = [name for name in layers if counts[name] == 0]
    if missing:
        raise ValueError(f"layers: {', '.join(map(repr, missing))} did not run in the forward pass")
    repeated = [name for name in layers if counts[name] > 1]
    if repeated:
        raise ValueError(f"layers: {', '.join(map(repr, repeated))} run several times per forward pass; "
                         "choose layers that run once")
    flat = [f"{name!r} gives {'no tensor' if shape is None else 'outputs shaped ' + str(shape)}"
            for name, shape in calls if spatial and (shape is None or len(shape) != 4)]
    if flat:
        raise ValueError(f"layers: {'; '.join(flat)}; expected spatial layers (outputs N x K x H x W)")
    return [name for name, _ in calls]


def stage_layers(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> List[str]:
    """Dotted names of the last layer of each stage, in forward order (see the module docstring).

    Args:
        model: the CNN.
        input_shape: C x H x W of one input image (the probe is a zero image).

    Raises:
        ValueError: fewer than two stages were found; give the layers by name.
    """
    modules = dict(model.named_modules())
    names = [name for name in _units(model) if not isinstance(modules[name], _POOLS)]
    calls, counts = _probe(model, names, input_shape)
    spatial = [(name, shape[2:]) for name, shape in calls
               if counts[name] == 1 and shape is not None and len(shape) == 4]
    ends = [name for (name, size), (_, following) in zip(spatial, spatial[1:] + [("", None)]) if size != following]
    if len(ends) < 2:
        raise ValueError(
            f"layers: found {len(ends)} stage(s) in {type(model).__name__}; give the layers to decompose "
            "as dotted names in forward order"
        )
    return ends


def stage_groups(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int] = (3, 224, 224)):
    """The model's units grouped top-down by the stages that ``layers`` end: ``[(name, units), ...]``.

    The first group, ``"head"``, holds the units after the last layer; then
    each layer's group holds the units from the previous layer (exclusive)
    to it (inclusive). Units that run more than once are left out.
    """
    calls, counts = _probe(model, _units(model), input_shape)
    units = [name for name, _ in calls if counts[name] == 1]
    missing = [layer for layer in layers if layer not in units]
    if missing:
        raise ValueError(f"layers: {', '.join(map(repr, missing))} are not units of the model that run once")
    ends = [units.index(layer) for layer in layers]
    starts = [0] + [end + 1 for end in ends[:-1]]
    groups = [("head", units[ends[-1] + 1:])]
    groups += [(layer, units[start : end + 1]) for layer, start, end in zip(layers[::-1], starts[::-1], ends[::-1])]
    return groups


def randomize_parameters(model: nn.Module, units: Sequence[str], generator: torch.Generator) -> None:
    """Replace every parameter of ``units`` (dotted names) by Gaussian noise of the parameter's own scale.

    The scale is the parameter's standard deviation (its absolute value for
    a scalar), as in the cascading randomization of Adebayo et al.; used on
    a *copy* of the user's model.
    """
    modules = dict(model.named_modules())
    with torch.no_grad():
        for unit in units:
            for parameter in modules[unit].parameters():
                noise = torch.randn(parameter.shape, generator=generator).to(parameter.device, parameter.dtype)
                parameter.copy_(noise * (parameter.std() if parameter.numel() > 1 else parameter.abs()))
